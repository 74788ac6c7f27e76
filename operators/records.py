"""Rows for the store's tables: column names and row builders.

The decider and the decoders produce :class:`Rows` (one table, many rows);
the ClickHouse sink writes each as one columnar insert. Column names match
``infra/clickhouse/*.sql`` and DESIGN.md; times are epoch milliseconds, which
ClickHouse stores as ``DateTime64(3, 'UTC')``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from operators.alarms import Alarm
from operators.decision import DECISION_COLUMNS
from operators.events import DeadLetter, OutcomeEvent
from operators.flags import Flags
from operators.ids import row_id
from operators.modes import ModeChange
from operators.quality import QUALITY_COLUMNS
from operators.rollout import RolloutChange

__all__ = [
    "ALARM_COLUMNS",
    "CONTROL_LOG_COLUMNS",
    "DEAD_LETTER_COLUMNS",
    "DECISION_COLUMNS",
    "MODE_CHANGE_COLUMNS",
    "OUTCOME_COLUMNS",
    "QUALITY_COLUMNS",
    "Rows",
    "alarm_rows",
    "dead_letter_rows",
    "flag_rows",
    "mode_change_rows",
    "outcome_rows",
    "rollout_rows",
]

ALARM_COLUMNS = (
    "alarm_id", "detected_at", "event_time", "source_id", "signal", "detector", "value",
    "threshold", "details", "flow", "onset_time", "magnitude", "direction", "baseline",
    "baseline_sd",
)
DEAD_LETTER_COLUMNS = ("dead_letter_id", "received_at", "origin", "reason", "raw", "flow")
OUTCOME_COLUMNS = ("decision_id", "outcome", "label", "event_time", "received_at", "origin")
MODE_CHANGE_COLUMNS = ("change_id", "at", "from_mode", "to_mode", "reason", "trigger", "values",
                       "scope", "flow")
CONTROL_LOG_COLUMNS = ("entry_id", "at", "kind", "name", "state", "who", "reason", "details",
                       "scope", "flow")


@dataclass(slots=True)
class Rows:
    """A batch of rows for one table, in the column order of ``columns``.

    >>> Rows("decisions", ("a", "b"), [(1, 2)]).count
    1
    """

    table: str
    columns: tuple[str, ...]
    rows: list[tuple] = field(default_factory=list)
    trace: list = field(default_factory=list)  # rows to trace once stored (opaque here)

    @property
    def count(self) -> int:
        return len(self.rows)

    def __reduce__(self) -> tuple:
        # Rows cross processes (to the embedded store's owner) pickled. A row that is a
        # NamedTuple (a Decision) is a Python-level reduce to record and a constructor to
        # replay; the same values as one tuple per column pickle in C, in about a third
        # of the time both ways. The other side gets plain tuples, all a store reads.
        rows = self.rows
        if not rows or set(map(len, rows)) != {len(self.columns)}:
            return (Rows, (self.table, self.columns, rows, self.trace))
        columns = list(zip(*rows, strict=True))
        return (_from_columns, (self.table, self.columns, columns, self.trace))


def _from_columns(table: str, columns: tuple[str, ...], values: list[tuple],
                  trace: list) -> Rows:
    """The :class:`Rows` that :meth:`Rows.__reduce__` took apart into columns."""
    return Rows(table, columns, list(zip(*values, strict=True)), trace)


def _json(details: dict) -> str:
    return orjson.dumps(details, option=orjson.OPT_NON_STR_KEYS).decode()


def alarm_rows(alarms: list[Alarm], flow: str) -> Rows:
    return Rows("drift_events", ALARM_COLUMNS, [
        (a.alarm_id, a.detected_at, a.event_ms, a.source_id, a.signal, a.detector, a.value,
         a.threshold, _json(a.details), flow,
         a.event_ms if a.onset_ms is None else a.onset_ms, a.magnitude, a.direction,
         a.baseline, a.baseline_sd) for a in alarms])


def dead_letter_rows(dead: list[DeadLetter], received_at: list[int], flow: str) -> Rows:
    """Dead letters, each received at its own time; the ID hashes origin and bytes, so
    a replay writes the same rows."""
    return Rows("dead_letters", DEAD_LETTER_COLUMNS, [
        (row_id(d.origin, d.raw), t, d.origin, d.reason, d.raw.decode("utf-8", "replace"),
         flow) for d, t in zip(dead, received_at, strict=True)])


def outcome_rows(outcomes: list[OutcomeEvent], received_at: int) -> Rows:
    return Rows("outcomes", OUTCOME_COLUMNS, [
        (o.decision_id, o.outcome, o.label, o.event_ms, received_at, o.origin)
        for o in outcomes])


def mode_change_rows(changes: list[ModeChange], scope: str, flow: str) -> Rows:
    return Rows("mode_changes", MODE_CHANGE_COLUMNS, [
        (row_id(flow, scope, c.at, c.from_mode, c.to_mode), c.at, c.from_mode, c.to_mode,
         c.reason, c.trigger, _json(c.values), scope, flow) for c in changes])


def flag_rows(flags: Flags, meta: dict, scope: str, flow: str) -> Rows:
    """The flags now in force, as one ``control_log`` row (``meta``: the file's who/why)."""
    at = int(meta.get("updated_at_ms", 0))
    change = meta.get("change", {})
    name = str(change.get("capability", "all"))
    state = "reset" if change.get("reset") else ("on" if change.get("on") else "off")
    return Rows("control_log", CONTROL_LOG_COLUMNS, [(
        row_id(flow, scope, "flags", at), at, "flags", name, state, str(meta.get("who", "")),
        str(meta.get("reason", "")), _json(flags.to_json() | {"change": change}), scope,
        flow)])


def rollout_rows(changes: list[RolloutChange], scope: str, flow: str) -> Rows:
    return Rows("control_log", CONTROL_LOG_COLUMNS, [
        (row_id(flow, scope, "rollout", c.at, c.state, c.to_share), c.at, "rollout",
         c.candidate, f"{c.state} {c.to_share:g}", "auto", c.reason,
         _json(c.values | {"from_share": c.from_share, "to_share": c.to_share}), scope, flow)
        for c in changes])
