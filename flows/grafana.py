"""The Grafana dashboard JSON, built from the panel SQL of ``infra/dashboards``.

``python -m flows.grafana > infra/grafana/lucidstream.json`` regenerates it; a test
checks that the committed file and the panel files agree. Panels query the
ClickHouse data source provisioned as uid ``lucidstream-clickhouse``.
"""

from __future__ import annotations

import json
import sys

from flows.panels import Panel, load_panels

__all__ = ["DATASOURCE", "dashboard_json"]

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


if __name__ == "__main__":
    json.dump(dashboard_json(), sys.stdout, indent=2)
    sys.stdout.write("\n")
