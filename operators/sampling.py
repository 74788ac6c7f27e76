"""Which decisions get a trace, and how many spans a process may spend per second.

A Python span costs tens of microseconds, so at tens of thousands of decisions a
second a span per event is impossible. :class:`TraceSampler` keeps every
decision worth a look (not ``NORMAL``, stale, fallback, escalated, rejected by
an invariant, a canary) and a fixed share of the rest, chosen by a hash of the
decision ID so a replay traces the same decisions. :class:`SpanBudget` then
caps the spans per second of wall time; what it refuses is counted.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence

from operators.decision import Decision
from operators.modes import NORMAL

__all__ = ["SpanBudget", "TraceSampler"]



class TraceSampler:
    """Picks the decisions of a batch to trace.

    >>> row = lambda did, path="fast", mode="NORMAL", fresh=True: Decision(
    ...     did, "", "s", "t", path, "go", None, None, "", "", mode, 0, 0, 0, fresh, 0.0,
    ...     False, "nominal", "f", "o")
    >>> sampler = TraceSampler(ratio=0.0)
    >>> sampler.pick([row("a"), row("b", path="fallback", fresh=False),
    ...               row("c", mode="CONSERVATIVE"), row("d", path="canary")])
    [1, 2, 3]
    >>> len(TraceSampler(ratio=0.5).pick([row(str(i)) for i in range(1000)])) // 100
    5
    """

    def __init__(self, ratio: float = 0.01) -> None:
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"trace ratio {ratio}: use a share between 0 and 1")
        self.ratio = ratio
        self._cut = int(ratio * 2**32)

    @staticmethod
    def must_keep(row: Decision) -> bool:
        return (row.mode != NORMAL or not row.fresh or row.path in ("fallback", "canary")
                or row.escalated or "rejected:" in row.reason)

    def pick(self, rows: Sequence[Decision]) -> list[int]:
        cut, keep = self._cut, self.must_keep
        return [i for i, row in enumerate(rows)
                if keep(row) or zlib.crc32(row.decision_id.encode()) < cut]


class SpanBudget:
    """A token bucket of spans per second (wall clock), refilled continuously.

    >>> budget = SpanBudget(per_second=10)
    >>> budget.take(8), budget.take(8), budget.dropped
    (True, False, 8)
    >>> SpanBudget(per_second=20).afford(count=5, each=8)   # two trees of eight spans
    2
    """

    def __init__(self, per_second: int = 2_000) -> None:
        self.per_second = per_second
        self._tokens = float(per_second)
        self._at = time.monotonic()
        self.dropped = 0

    def take(self, spans: int) -> bool:
        """Pay for ``spans`` now, or refuse (and count them dropped)."""
        return self.afford(1, spans) == 1

    def afford(self, count: int, each: int) -> int:
        """How many of ``count`` items of ``each`` spans the budget pays for now (the
        first ones); the spans of the rest are counted dropped."""
        now = time.monotonic()
        self._tokens = min(self.per_second, self._tokens + (now - self._at) * self.per_second)
        self._at = now
        affordable = min(count, int(self._tokens // each)) if each > 0 else count
        self._tokens -= affordable * each
        self.dropped += (count - affordable) * each
        return affordable
