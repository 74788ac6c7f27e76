"""How long the store keeps each kind of row: one TTL per group of tables.

Every table belongs to one group: ``decisions`` (decisions and what follows them:
outcomes, regrets, escalations), ``traces`` (the OpenTelemetry spans), ``metrics``
(decision-quality windows, canary results, runs, the pipeline's own costs) and
``alarms`` (drift and health alarms, mode changes, invariant violations, dead letters,
the control log). A row is kept for its group's time *after it was stored* (the
``stored_at`` column), not after its event time: a replay of last year's stream is
kept as long as a live run's rows, instead of vanishing at its first merge.
ClickHouse deletes expired rows when it merges parts, so they may stay visible until
the next merge.

The TTLs come from ``LUCIDSTREAM_RETENTION`` (or ``lucidstream retention --set``): a
comma-separated list of ``group=duration``, a duration being a number with ``s``,
``m``, ``h`` or ``d``, or ``off`` to keep a group for ever. Groups not named keep their TTL in
force. Applied when a process opens the store: a table created without a TTL gets
its group's default; a TTL named explicitly replaces the one in force (a longer one
loses nothing; a shorter one deletes what is now beyond it at the next merge).

>>> r = Retention.parse("traces=2d, alarms=off")
>>> r.seconds_for("otel_traces"), r.seconds_for("drift_events"), r.seconds_for("decisions")
(172800, None, 7776000)
>>> r.explicit_for("decisions"), r.explicit_for("drift_events")
(False, True)
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from operators.errors import ConfigError

__all__ = ["DEFAULT_RETENTION", "GROUPS", "KEPT_FOR_EVER", "Retention", "describe",
           "format_duration", "ttl_in_force"]

GROUPS: dict[str, tuple[str, ...]] = {
    "decisions": ("decisions", "outcomes", "regrets", "escalations"),
    "traces": ("otel_traces", "otel_traces_trace_id_ts"),
    "metrics": ("quality_metrics", "canary_results", "runs", "pipeline_metrics"),
    "alarms": ("drift_events", "mode_changes", "invariant_violations", "dead_letters",
               "control_log"),
}
_GROUP_OF = {table: group for group, tables in GROUPS.items() for table in tables}
_DAY = 86_400
DEFAULT_RETENTION: dict[str, int | None] = {
    "decisions": 90 * _DAY, "traces": 7 * _DAY, "metrics": 365 * _DAY, "alarms": 365 * _DAY}
_UNITS = {"s": 1, "m": 60, "h": 3_600, "d": _DAY}
KEPT_FOR_EVER = "lucidstream retention: off"  # the comment of a table kept on purpose
_TTL_IN_FORCE = re.compile(r"TTL\s+stored_at\s*\+\s*toIntervalSecond\((\d+)\)")


@dataclass(frozen=True)
class Retention:
    """The TTL of each group, in seconds (``None``: kept for ever).

    >>> Retention().seconds_for("otel_traces") == 7 * 86_400
    True
    """

    seconds: Mapping[str, int | None] = field(default_factory=lambda: dict(DEFAULT_RETENTION))
    explicit: frozenset[str] = frozenset()  # groups named by the user: applied at every start

    @classmethod
    def parse(cls, spec: str) -> Retention:
        seconds = dict(DEFAULT_RETENTION)
        named = set()
        for item in filter(None, (part.strip() for part in spec.split(","))):
            group, _, value = item.partition("=")
            group, value = group.strip().lower(), value.strip().lower()
            if group not in GROUPS:
                raise ConfigError(f"retention {item!r}: unknown group {group!r}; the groups "
                                  f"are {', '.join(GROUPS)} (e.g. traces=7d,decisions=90d)")
            seconds[group] = _parse_duration(item, value)
            named.add(group)
        return cls(seconds, frozenset(named))

    @classmethod
    def from_env(cls) -> Retention:
        return cls.parse(os.environ.get("LUCIDSTREAM_RETENTION", ""))

    def seconds_for(self, table: str) -> int | None:
        group = _GROUP_OF.get(table)
        return self.seconds[group] if group else None

    def explicit_for(self, table: str) -> bool:
        return _GROUP_OF.get(table) in self.explicit

    def statements(self, table: str, engine_full: str, comment: str = "") -> list[str]:
        """The ``ALTER``s that bring ``table`` to its TTL (none when it has it).

        A table without a TTL gets its group's; one with a TTL, or kept for ever on
        purpose (its comment says so), keeps it unless the user named the group.

        >>> r = Retention.parse("traces=1h, alarms=off")
        >>> r.statements("otel_traces", "MergeTree ORDER BY x")
        ['ALTER TABLE `otel_traces` MODIFY TTL stored_at + toIntervalSecond(3600)']
        >>> r.statements("decisions", "... TTL stored_at + toIntervalSecond(60) SETTINGS ...")
        []
        >>> r.statements("mode_changes", "MergeTree ORDER BY x")[-1]
        "ALTER TABLE `mode_changes` MODIFY COMMENT 'lucidstream retention: off'"
        >>> Retention().statements("mode_changes", "x", comment=KEPT_FOR_EVER)
        []
        """
        if table not in _GROUP_OF:
            return []
        wanted = self.seconds_for(table)
        in_force = ttl_in_force(engine_full)
        chosen = in_force is not None or comment == KEPT_FOR_EVER
        if (chosen and not self.explicit_for(table)) or (
                wanted == in_force and (wanted is not None or comment == KEPT_FOR_EVER)):
            return []
        if wanted is None:
            drop = [f"ALTER TABLE `{table}` REMOVE TTL"] if in_force is not None else []
            return [*drop, f"ALTER TABLE `{table}` MODIFY COMMENT '{KEPT_FOR_EVER}'"]
        keep = [f"ALTER TABLE `{table}` MODIFY COMMENT ''"] if comment == KEPT_FOR_EVER else []
        return [f"ALTER TABLE `{table}` MODIFY TTL stored_at + toIntervalSecond({wanted})",
                *keep]


def ttl_in_force(engine_full: str) -> int | None:
    """The seconds of a table's ``stored_at`` TTL, from ``system.tables.engine_full``."""
    found = _TTL_IN_FORCE.search(engine_full)
    return int(found.group(1)) if found else None


def describe(store_tables: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(group, table, TTL) for each grouped table in ``store_tables`` (name: engine_full).

    >>> describe({"runs": "MergeTree TTL stored_at + toIntervalSecond(86400) SETTINGS x",
    ...           "decisions": "MergeTree ORDER BY x"})
    [('decisions', 'decisions', 'off'), ('metrics', 'runs', '1d')]
    """
    grouped = sorted((_GROUP_OF[t], t, engine) for t, engine in store_tables.items()
                     if t in _GROUP_OF)
    return [(group, t, format_duration(ttl_in_force(engine))) for group, t, engine in grouped]


def format_duration(seconds: int | None) -> str:
    """``90d``, ``36h``, ``off``.

    >>> format_duration(90 * 86_400), format_duration(5_400), format_duration(None)
    ('90d', '90m', 'off')
    """
    if seconds is None:
        return "off"
    for unit in ("d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


def _parse_duration(item: str, value: str) -> int | None:
    if value in ("off", "none", "forever", "0"):
        return None
    found = re.fullmatch(r"(\d+)\s*([smhd])", value)
    if not found or int(found.group(1)) == 0:
        raise ConfigError(f"retention {item!r}: {value!r} is not a duration; write a whole "
                          "number with s, m, h or d (30d, 12h), or off to keep for ever")
    return int(found.group(1)) * _UNITS[found.group(2)]
