"""Decision-quality metrics per window of pipeline clock.

Per shard, model version and variant, every ``window_ms`` (default 10 s of
pipeline clock) the tracker emits one row: events, decisions by path, latency
percentiles, a 10-bin confidence histogram, stale, fallback and escalation
rates, fast/slow agreement, accuracy and Brier score where outcomes arrived,
drift alarms and late-data regrets. Windows follow the pipeline clock, so a
replay yields the same rows (all but the wall-clock latency columns).
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# np.percentile imports numpy.ma on its first call (about 9 ms): imported with this
# module, so the first window's close does not hold the deciding thread that long
import numpy.ma
from mypy_extensions import mypyc_attr

from operators.decision import Decision
from operators.ids import row_id

__all__ = ["QUALITY_COLUMNS", "QualityTracker"]

QUALITY_COLUMNS = (
    "metric_id", "window_start", "window_end", "flow", "shard", "model_version", "variant",
    "events", "decisions", "fast", "slow", "fallback", "stale", "escalated",
    "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "confidence_hist",
    "confidence_mean", "stale_rate", "fallback_rate", "escalation_rate", "slow_compared",
    "slow_agreed", "agreement", "labelled", "correct", "accuracy", "brier", "outcomes_late",
    "drift_alarms",
    "regrets", "regrets_changed", "regret_rate",
)

@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
@dataclass
class _Cell:
    decisions: int = 0
    fast: int = 0
    slow: int = 0
    fallback: int = 0
    stale: int = 0
    escalated: int = 0
    # doubles side by side: a window of a fast stream holds tens of thousands, read
    # by numpy in place as the window closes (a list was copied number by number, on
    # the deciding thread, every shard's window closing together)
    latencies: Any = field(default_factory=lambda: array("d"))
    confidences: Any = field(default_factory=lambda: array("d"))
    slow_compared: int = 0
    slow_agreed: int = 0
    labelled: int = 0
    correct: int = 0
    brier: float = 0.0
    regrets: int = 0
    regrets_changed: int = 0


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class QualityTracker:
    """Accumulates one window at a time and emits rows as the clock passes its end.

    >>> q = QualityTracker(flow="f", shard="s0", window_ms=1_000)
    >>> row = Decision("id", "t", "src", "type", "fast", "go", 0.9, 0.9, "lr-1", "control",
    ...                "NORMAL", 0, 100, 100, True, 1.5, False, "nominal", "f", "o")
    >>> q.add_decisions([row, row], events=2, now=100)
    >>> rows = q.close(now=1_000)
    >>> [(r[7], r[8], r[9]) for r in rows]   # events, decisions, fast
    [(2, 2, 2)]
    """

    def __init__(self, flow: str, shard: str, window_ms: int = 10_000) -> None:
        self.flow = flow
        self.shard = shard
        self.window_ms = window_ms
        self._reset()

    def _reset(self) -> None:
        self._start: int | None = None
        self._cells: dict[tuple[str, str], _Cell] = {}
        self._events = 0
        self._alarms = 0
        self._late = 0
        self._pending: list[tuple] = []

    def _cell(self, version: str, variant: str) -> _Cell:
        key = (version, variant)
        cell = self._cells.get(key)
        if cell is None:
            cell = self._cells[key] = _Cell()
        return cell

    def _open(self, now: int) -> None:
        self._advance(now)
        if self._start is None:
            self._start = now - now % self.window_ms

    def add_decisions(self, rows: Sequence[Decision], events: int, now: int) -> None:
        """Count decisions, each in the window of its ``decided_at``."""
        self._open(rows[0].decided_at if rows else now)
        self._events += events
        end = (self._start or 0) + self.window_ms
        for row in rows:
            if row.decided_at >= end:
                self._open(row.decided_at)
                end = (self._start or 0) + self.window_ms
            cell = self._cell(row.model_version, row.variant)
            cell.decisions += 1
            path = row.path
            if path == "fast":
                cell.fast += 1
            elif path == "slow":
                cell.slow += 1
            elif path == "fallback":
                cell.fallback += 1
            if not row.fresh:
                cell.stale += 1
            if row.escalated:
                cell.escalated += 1
            cell.latencies.append(row.latency_ms)
            if row.confidence is not None:
                cell.confidences.append(row.confidence)

    def add_agreement(self, version: str, variant: str, agreed: bool, now: int) -> None:
        self._open(now)
        cell = self._cell(version, variant)
        cell.slow_compared += 1
        cell.slow_agreed += agreed

    def add_outcome(self, version: str, variant: str, correct: bool, sq_error: float,
                    now: int) -> None:
        self._open(now)
        cell = self._cell(version, variant)
        cell.labelled += 1
        cell.correct += correct
        cell.brier += sq_error

    def add_regret(self, version: str, variant: str, changed: bool, now: int) -> None:
        self._open(now)
        cell = self._cell(version, variant)
        cell.regrets += 1
        cell.regrets_changed += changed

    def add_late_outcome(self, now: int) -> None:
        self._open(now)
        self._late += 1

    def add_alarms(self, count: int, now: int) -> None:
        if count:
            self._open(now)
            self._alarms += count

    def close(self, now: int, force: bool = False) -> list[tuple]:
        """Rows of every window that ended by ``now`` (and the open one with ``force``)."""
        self._advance(now, force)
        rows, self._pending = self._pending, []
        return rows

    def _advance(self, t: int, force: bool = False) -> None:
        if self._start is not None and (force or t >= self._start + self.window_ms):
            self._pending += self._rows(self._start, self._start + self.window_ms)
            self._cells, self._events, self._alarms, self._late = {}, 0, 0, 0
            self._start = None  # the next window opens with the next activity

    def _rows(self, start: int, end: int) -> list[tuple]:
        rows = []
        cells = self._cells or {("", ""): _Cell()}
        first = True
        for (version, variant), c in sorted(cells.items()):
            lat = np.frombuffer(c.latencies, dtype=np.float64) if c.latencies else None
            p50, p95, p99 = (np.percentile(lat, [50, 95, 99]).round(3).tolist()
                             if lat is not None else (0.0, 0.0, 0.0))
            conf = np.frombuffer(c.confidences, dtype=np.float64)
            hist = np.histogram(conf, bins=10, range=(0.5, 1.0))[0].tolist() if conf.size \
                else [0] * 10
            n = c.decisions

            def rate(x: int, of: int) -> float:
                return round(x / of, 6) if of else 0.0

            rows.append((
                row_id(self.flow, self.shard, start, version, variant), start, end, self.flow,
                self.shard, version, variant, self._events if first else 0, n, c.fast, c.slow,
                c.fallback, c.stale, c.escalated, p50, p95, p99, hist,
                round(float(conf.mean()), 6) if conf.size else None, rate(c.stale, n),
                rate(c.fallback, n), rate(c.escalated, n), c.slow_compared, c.slow_agreed,
                rate(c.slow_agreed, c.slow_compared) if c.slow_compared else None,
                c.labelled, c.correct, rate(c.correct, c.labelled) if c.labelled else None,
                round(c.brier / c.labelled, 6) if c.labelled else None,
                self._late if first else 0, self._alarms if first else 0, c.regrets,
                c.regrets_changed, rate(c.regrets_changed, n),
            ))
            first = False
        return rows
