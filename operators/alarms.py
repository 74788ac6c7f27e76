"""Alarms: one record per anomaly occurrence, shared by freshness and drift.

Every alarm becomes a row of the ``drift_events`` table. Its ``alarm_id`` is
deterministic (source, signal and what identifies the occurrence), so a
replay writes the same rows and the store deduplicates them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from operators.ids import row_id

__all__ = ["Alarm"]


@dataclass(slots=True)
class Alarm:
    """An anomaly seen once: a sequence gap, a skewed clock, a silent source, drift.

    >>> a = Alarm(detected_at=2_000, event_ms=1_000, source_id="s1", signal="seq_gap",
    ...           detector="sequence", value=3, threshold=1, key="seq=9")
    >>> a.alarm_id == Alarm(0, 0, "s1", "seq_gap", "sequence", 0, 0, key="seq=9").alarm_id
    True
    """

    detected_at: int
    event_ms: int
    source_id: str
    signal: str
    detector: str
    value: float
    threshold: float
    details: dict[str, Any] = field(default_factory=dict)
    key: str = ""
    # the shape of a change (level, spread, fleet, peer alarms); empty otherwise
    onset_ms: int | None = None   # event time where the change began, as estimated
    magnitude: float = 0.0        # its size, in the baseline's standard deviations
    direction: str = ""           # up | down
    baseline: float = 0.0         # the level it was compared with
    baseline_sd: float = 0.0      # and that level's standard deviation

    @property
    def alarm_id(self) -> str:
        return row_id(self.source_id, self.signal, self.detector, self.key)
