"""Stamping a shard's batch: each event's pipeline time, its source's freshness, and the
mode in force when it was stamped.

Every event passes here before any part of the decider sees it, so this loop is
compiled with the parts (``make native``). Canaries are set aside (they probe the
decider, they are no source's); heartbeats and idle reports tell freshness that their
source is alive and are not decided. Health is checked as the pipeline clock passes
(every ``check_every_ms`` of the freshness settings), through the decider's callback,
which also gives the mode from then on.
"""

from __future__ import annotations

from collections.abc import Callable

from operators.clock import ReplayClock, WallClock
from operators.freshness import FreshnessTracker
from operators.sensorevent import SensorEvent

__all__ = ["NOT_DECIDED", "Stamped", "stamp"]

NOT_DECIDED = frozenset({"heartbeat", "idle"})  # kinds that only say a source is alive


class Stamped:
    """A stamped batch: the events to decide, each one's pipeline time and mode, and the
    canaries with theirs."""

    def __init__(self) -> None:
        self.decided: list[SensorEvent] = []
        self.now: list[int] = []
        self.mode: list[str] = []
        self.canaries: list[tuple[SensorEvent, int, str]] = []


def stamp(events: list[SensorEvent], clock: WallClock | ReplayClock,
          tracker: FreshnessTracker, now: int, mode: str,
          checked: Callable[[int], str]) -> Stamped:
    """Stamp ``events`` in order, from the clock's ``now`` and the ``mode`` in force;
    ``checked(now)`` runs the health check due at ``now`` and gives the mode then. On the
    replay clock each event's arrival moves the clock; on the wall clock the batch is
    stamped with ``now``.

    >>> from operators.clock import ReplayClock
    >>> clock, tracker = ReplayClock(), FreshnessTracker()
    >>> events = [SensorEvent("u1", 1_000, {"v": 1.0}, arrival_ms=1_010),
    ...           SensorEvent("u1", 1_400, {}, kind="heartbeat", arrival_ms=1_405),
    ...           SensorEvent("u2", 1_500, {"v": 2.0}, arrival_ms=1_520)]
    >>> out = stamp(events, clock, tracker, 0, "NORMAL", lambda now: "CONSERVATIVE")
    >>> [e.source_id for e in out.decided], out.now, out.mode
    (['u1', 'u2'], [1010, 1520], ['CONSERVATIVE', 'CONSERVATIVE'])
    """
    out = Stamped()
    decided, stamped, modes, canaries = out.decided, out.now, out.mode, out.canaries
    replay = clock if isinstance(clock, ReplayClock) else None
    every = tracker.config.check_every_ms
    for ev in events:
        if replay is not None:
            replay.observe(ev.event_ms if ev.arrival_ms is None else ev.arrival_ms)
            now = replay.now_ms()
        kind = ev.kind
        if kind == "canary":  # a probe: not a source, never holds the watermark
            canaries.append((ev, now, mode))
            continue
        tracker.observe(ev.source_id, ev.event_ms, now, ev.seq, kind)
        if now - tracker.last_check_ms >= every:
            mode = checked(now)
        if kind not in NOT_DECIDED:
            decided.append(ev)
            stamped.append(now)
            modes.append(mode)
    return out
