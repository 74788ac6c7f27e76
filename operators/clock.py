"""One clock for the whole pipeline.

Every "now" in lucidstream is read from a clock object. Live, that is the wall
clock. In replay it is the arrival time of the latest event seen (or its event
time when the event carries no ``arrival_time``), so freshness, watermarks and
modes behave exactly the same on every replay, faster than real time.
"""

from __future__ import annotations

import time
from typing import Protocol

from mypy_extensions import mypyc_attr

__all__ = ["Clock", "ReplayClock", "WallClock", "make_clock"]


class Clock(Protocol):
    """Anything that tells the pipeline time in epoch milliseconds."""

    replay: bool

    def observe(self, arrival_ms: int) -> None:
        """Tell the clock an event arrived at ``arrival_ms`` (replay only)."""

    def now_ms(self) -> int:
        """Current pipeline time in epoch milliseconds."""
        ...


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class WallClock:
    """The system clock; ``observe`` is ignored.

    >>> WallClock().now_ms() > 1_600_000_000_000
    True
    """

    replay = False

    def observe(self, arrival_ms: int) -> None:
        return None

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class ReplayClock:
    """Time is the latest arrival observed; it never runs backwards.

    >>> clock = ReplayClock()
    >>> clock.observe(1_000); clock.observe(900); clock.now_ms()
    1000
    """

    replay = True

    def __init__(self, start_ms: int = 0) -> None:
        self.start_ms = start_ms
        self._now = start_ms

    def observe(self, arrival_ms: int) -> None:
        if arrival_ms > self._now:
            self._now = arrival_ms

    def now_ms(self) -> int:
        return self._now

    def __repr__(self) -> str:
        return f"ReplayClock(now_ms={self._now})"


def make_clock(replay: bool) -> WallClock | ReplayClock:
    """The replay clock when ``replay`` is true, else the wall clock."""
    return ReplayClock() if replay else WallClock()
