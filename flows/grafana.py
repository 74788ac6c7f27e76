"""The Grafana dashboard JSON, built from the panel SQL of ``infra/dashboards``.

``python -m flows.grafana > infra/grafana/lucidstream.json`` regenerates it, and
``python -m flows.grafana --alerts > infra/grafana/provisioning/alerting/lucidstream.yaml``
the same alert rules as ``infra/alerts.yaml``, as Grafana alert rules; a test checks
that the committed files agree with their sources. Panels and rules query the
ClickHouse data source provisioned as uid ``lucidstream-clickhouse``.
"""

from __future__ import annotations

import json
import sys

from flows.alerts import Rule, load_rules
from flows.panels import Panel, load_panels

__all__ = ["DATASOURCE", "alert_rules_yaml", "dashboard_json"]

DATASOURCE = {"type": "grafana-clickhouse-datasource", "uid": "lucidstream-clickhouse"}


def _panel(p: Panel, index: int) -> dict:
    kind = {"line": "timeseries", "bar": "timeseries", "table": "table"}[p.chart]
    panel: dict = {
        "id": index + 1, "type": kind, "title": p.title, "description": p.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
        "targets": [{
            "refId": "A", "datasource": DATASOURCE, "editorType": "sql",
            "queryType": "table" if p.chart == "table" else "timeseries",
            "format": 1 if p.chart == "table" else 0, "rawSql": p.sql}],
        "fieldConfig": {"defaults": {"unit": "ms" if p.unit == "ms" else "short"},
                        "overrides": []},
        "options": {},
    }
    if p.chart == "bar":
        panel["fieldConfig"]["defaults"]["custom"] = {"drawStyle": "bars", "fillOpacity": 80}
    if p.name == "confidence_distribution":  # bins, not time: a bar chart over the bins
        panel["type"] = "barchart"
        panel["targets"][0].update(queryType="table", format=1)
        panel["options"] = {"xField": "confidence"}
    return panel


def dashboard_json() -> dict:
    """The dashboard: one Grafana panel per panel file, in name order."""
    return {
        "uid": "lucidstream", "title": "lucidstream: decisions and their health",
        "tags": ["lucidstream"], "timezone": "utc", "schemaVersion": 39, "version": 1,
        "refresh": "10s", "time": {"from": "now-6h", "to": "now"},
        "panels": [_panel(p, i) for i, p in enumerate(load_panels())],
    }


def _grafana_sql(rule: Rule) -> str:
    """A rule's query on Grafana's clock (the wall clock: a live flow's pipeline clock),
    reduced to the key and value columns Grafana's alerting reads."""
    now = "toUnixTimestamp64Milli(now64(3))"
    sql = (rule.sql.replace("{now:Int64}", now)
           .replace("{since:Int64}", f"({now} - {rule.window_ms})")
           .replace("{window_ms:Int64}", str(max(rule.window_ms, 1))))
    return f"SELECT key, toFloat64(value) AS value FROM (\n{sql.strip()}\n)"


def alert_rules_yaml() -> str:
    """Grafana's alert rule provisioning file for the rules of ``infra/alerts.yaml``."""
    import yaml

    rules = []
    for rule in load_rules():
        op, limit = ("gt", rule.above) if rule.above is not None else ("lt", rule.below)
        rules.append({
            "uid": f"lucidstream-{rule.name.replace('_', '-')}", "title": rule.name,
            "condition": "C", "for": "0s", "noDataState": "OK", "execErrState": "Error",
            "labels": {"severity": rule.severity, "source": "lucidstream"},
            "annotations": {"summary": rule.summary},
            "data": [
                {"refId": "A", "datasourceUid": DATASOURCE["uid"],
                 "relativeTimeRange": {"from": max(rule.window_ms // 1000, 60), "to": 0},
                 "model": {"refId": "A", "editorType": "sql", "format": 1,
                           "queryType": "table", "rawSql": _grafana_sql(rule)}},
                {"refId": "B", "datasourceUid": "__expr__",
                 "model": {"refId": "B", "type": "reduce", "expression": "A",
                           "reducer": "last"}},
                {"refId": "C", "datasourceUid": "__expr__",
                 "model": {"refId": "C", "type": "threshold", "expression": "B",
                           "conditions": [{"evaluator": {"type": op, "params": [limit]}}]}},
            ],
        })
    doc = {"apiVersion": 1, "groups": [{"orgId": 1, "name": "lucidstream",
                                        "folder": "lucidstream", "interval": "30s",
                                        "rules": rules}]}
    head = ("# Generated from infra/alerts.yaml by python -m flows.grafana --alerts; do not "
            "edit.\n# Point a Grafana contact point at your webhook to be notified.\n")
    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return head + yaml.dump(doc, Dumper=Dumper, sort_keys=False, width=100)


if __name__ == "__main__":
    if sys.argv[1:] == ["--alerts"]:
        sys.stdout.write(alert_rules_yaml())
    else:
        json.dump(dashboard_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
