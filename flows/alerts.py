"""Alert rules over the store, and the state machine that turns them into notifications.

A rule (``infra/alerts.yaml``) is a query returning one row per key with a value; a
key *fires* when its value crosses the rule's threshold and *resolves* when it no
longer does. Each firing and each resolution is one :class:`Notification`, carrying
a stable ``alert_id`` per episode (rule, key and the pipeline time it began), so a
receiver can deduplicate.

Rules are evaluated at steps of the pipeline clock, not of the wall clock: the
evaluator catches up step by step to the newest time the store holds, so a replay
that runs an hour of events in a minute is told what a live run would have been.

>>> engine = AlertEngine()
>>> rule = Rule("lag", "lag too high", "warning", 60_000, "SELECT 1", above=5.0)
>>> [n.status for n in engine.step(rule, 1_000, {"fleet": Reading(7.0)})]
['firing']
>>> engine.step(rule, 6_000, {"fleet": Reading(8.0)})        # still firing: no repeat
[]
>>> [(n.status, n.value) for n in engine.step(rule, 11_000, {})]  # its row is gone
[('resolved', 0.0)]
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from operators.errors import ConfigError

__all__ = ["DEFAULT_RULES", "AlertEngine", "Notification", "Reading", "Rule", "evaluate",
           "load_rules", "store_clock"]

DEFAULT_RULES = Path(__file__).resolve().parents[1] / "infra" / "alerts.yaml"
SEVERITIES = ("info", "warning", "critical")
_NAMESPACE = uuid.UUID("6c1d3a52-5b44-4bb6-9d0f-6f1c62b0a7e1")
_DURATION = re.compile(r"(\d+)\s*(ms|s|m|h)")
_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000}


@dataclass(frozen=True)
class Rule:
    """One alert rule.

    >>> Rule("x", "y", "warning", 0, "SELECT 1", above=0).crossed(1.0)
    True
    """

    name: str
    summary: str
    severity: str
    window_ms: int
    sql: str
    above: float | None = None
    below: float | None = None
    ids_sql: str | None = None

    def crossed(self, value: float) -> bool:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        if self.above is not None and value > self.above:
            return True
        return self.below is not None and value < self.below

    @property
    def threshold(self) -> float:
        return self.above if self.above is not None else float(self.below or 0)


@dataclass(frozen=True)
class Reading:
    """One key's row of a rule's query."""

    value: float
    ids: tuple[str, ...] = ()
    detail: str = ""


@dataclass(frozen=True)
class Notification:
    """A firing or a resolution, as sent to a webhook."""

    alert_id: str
    status: str  # firing | resolved
    rule: str
    severity: str
    summary: str
    key: str
    value: float
    threshold: float
    window_s: float
    at_ms: int  # pipeline clock
    started_ms: int
    ids: tuple[str, ...] = ()
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        """The JSON body of the webhook call."""
        from datetime import datetime, timezone

        def iso(ms: int) -> str:
            return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(
                timespec="milliseconds").replace("+00:00", "Z")

        body = {"alert_id": self.alert_id, "status": self.status, "rule": self.rule,
                "severity": self.severity, "summary": self.summary, "key": self.key,
                "value": self.value, "threshold": self.threshold, "window_s": self.window_s,
                "at": iso(self.at_ms), "started_at": iso(self.started_ms),
                "ids": list(self.ids), "detail": self.detail}
        if self.ids:
            body["trace"] = f"lucidstream trace {self.ids[0]}"
        body.update(self.extra)
        return body


@dataclass
class _Episode:
    alert_id: str
    started_ms: int
    reading: Reading


class AlertEngine:
    """Which (rule, key) pairs fire now; one notification per change."""

    def __init__(self) -> None:
        self._active: dict[tuple[str, str], _Episode] = {}

    @property
    def active(self) -> list[tuple[str, str]]:
        return sorted(self._active)

    def step(self, rule: Rule, at_ms: int, readings: dict[str, Reading]) -> list[Notification]:
        """What changed for ``rule`` at pipeline time ``at_ms`` given its query's rows."""
        out = []
        for key, reading in readings.items():
            if rule.crossed(reading.value) and (rule.name, key) not in self._active:
                alert_id = str(uuid.uuid5(_NAMESPACE, f"{rule.name}|{key}|{at_ms}"))
                self._active[(rule.name, key)] = _Episode(alert_id, at_ms, reading)
                out.append(self._notice(rule, "firing", key, reading, at_ms, alert_id, at_ms))
        for (name, key), episode in list(self._active.items()):
            if name != rule.name:
                continue
            reading = readings.get(key, Reading(0.0))
            if not rule.crossed(reading.value):
                del self._active[(name, key)]
                out.append(self._notice(rule, "resolved", key, reading, at_ms,
                                        episode.alert_id, episode.started_ms))
            else:
                episode.reading = reading
        return out

    @staticmethod
    def _notice(rule: Rule, status: str, key: str, reading: Reading, at_ms: int,
                alert_id: str, started_ms: int) -> Notification:
        value = reading.value
        if isinstance(value, float) and math.isnan(value):
            value = 0.0
        return Notification(alert_id, status, rule.name, rule.severity, rule.summary, key,
                            float(value), rule.threshold, rule.window_ms / 1000, at_ms,
                            started_ms, reading.ids, reading.detail)


def _params(rule: Rule, at_ms: int) -> dict[str, int]:
    """The query parameters of ``rule`` evaluated at ``at_ms``."""
    return {"now": at_ms, "since": at_ms - rule.window_ms, "window_ms": max(rule.window_ms, 1)}


def evaluate(store: Any, rule: Rule, at_ms: int) -> dict[str, Reading]:
    """The rows of ``rule``'s query at pipeline time ``at_ms``, by key."""
    columns, rows = store.query(rule.sql, parameters=_params(rule, at_ms))
    readings = {}
    for row in rows:
        item = dict(zip(columns, row, strict=True))
        value = item.get("value")
        readings[str(item.get("key", ""))] = Reading(
            float(value) if value is not None else math.nan,
            tuple(str(i) for i in item.get("ids") or () if i), str(item.get("detail") or ""))
    return readings


def firing_ids(store: Any, rule: Rule, at_ms: int) -> tuple[str, ...]:
    """The IDs a rule's ``ids_sql`` names for a firing at ``at_ms`` (none without one)."""
    if not rule.ids_sql:
        return ()
    rows = store.query(rule.ids_sql, parameters=_params(rule, at_ms))[1]
    return tuple(str(i) for i in (rows[0][0] if rows and rows[0] else ()))


def store_clock(store: Any) -> tuple[int | None, int | None]:
    """The oldest and newest pipeline times the store's health tables hold (epoch ms)."""
    row = store.query(
        "SELECT min(t), max(t) FROM ("
        " SELECT toUnixTimestamp64Milli(window_end) AS t FROM quality_metrics"
        " UNION ALL SELECT toUnixTimestamp64Milli(at) FROM mode_changes"
        " UNION ALL SELECT toUnixTimestamp64Milli(detected_at) FROM drift_events)")[1]
    low, high = row[0] if row else (None, None)
    return (int(low), int(high)) if low and high else (None, None)


def load_rules(path: Path | str = DEFAULT_RULES) -> list[Rule]:
    """The rules of a YAML file (``infra/alerts.yaml`` by default), checked."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read alert rules {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"alert rules {path} are not valid YAML: {exc}") from None
    if not isinstance(data, dict) or data.get("version") != 1 or not isinstance(
            data.get("rules"), list):
        raise ConfigError(f"alert rules {path}: expected 'version: 1' and a 'rules' list")
    rules, names = [], set()
    for i, item in enumerate(data["rules"]):
        where = f"alert rules {path}, rule {i + 1}"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: expected a mapping")
        missing = [k for k in ("name", "summary", "severity", "window", "sql") if k not in item]
        if missing:
            raise ConfigError(f"{where}: missing {', '.join(missing)}")
        name = str(item["name"])
        if name in names:
            raise ConfigError(f"{where}: the name {name!r} is used twice")
        names.add(name)
        if item["severity"] not in SEVERITIES:
            raise ConfigError(f"{where} ({name}): severity must be one of "
                              f"{', '.join(SEVERITIES)}, got {item['severity']!r}")
        if ("above" in item) == ("below" in item):
            raise ConfigError(f"{where} ({name}): give exactly one of 'above' or 'below'")
        found = _DURATION.fullmatch(str(item["window"]).strip())
        if not found:
            raise ConfigError(f"{where} ({name}): window {item['window']!r} is not a duration "
                              "(0s, 60s, 5m, 1h)")
        rules.append(Rule(name, str(item["summary"]), item["severity"],
                          int(found.group(1)) * _MS[found.group(2)], str(item["sql"]),
                          above=_number(item.get("above"), where),
                          below=_number(item.get("below"), where),
                          ids_sql=item.get("ids_sql")))
    return rules


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: a threshold must be a number, got {value!r}")
    return float(value)
