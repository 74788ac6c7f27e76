"""A decision: one row of the ``decisions`` table, defined once and read by name.

The field order is the table's column order (``infra/clickhouse/001_core.sql``; a
test checks the two against each other), so a :class:`Decision` goes to the store as
it is. Times are epoch milliseconds on the pipeline clock.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["DECISION_COLUMNS", "Decision"]


class Decision(NamedTuple):
    """What was decided for one input (or one slow window, or one canary), and why.

    >>> d = Decision("d1", "0" * 32, "sensor-1", "motion", "fast", "stop", 0.97, 0.97,
    ...              "m1", "control", "NORMAL", 1_000, 1_020, 20, True, 0.4, False,
    ...              "rule:obstacle", "fleet", "file:x.jsonl:1")
    >>> d.action, d.fresh, d.age_ms
    ('stop', True, 20)
    """

    decision_id: str
    trace_id: str
    source_id: str
    decision_type: str
    path: str              # fast | slow | fallback | canary
    action: str
    score: float | None    # None when the model did not score it (rules only)
    confidence: float | None
    model_version: str
    variant: str
    mode: str
    event_time: int
    decided_at: int
    age_ms: int            # decided_at - event_time
    fresh: bool            # False when the age broke the SLA or the clock is skewed
    latency_ms: float      # ingest to decision, wall time inside the pipeline
    escalated: bool
    reason: str
    flow: str
    origin: str            # file:line, topic/partition/offset, or window:start-end


DECISION_COLUMNS: tuple[str, ...] = Decision._fields
