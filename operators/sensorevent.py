"""A validated sensor event, the unit every part of the decider reads.

It lives in a module of its own so that it can be compiled (``make native``) apart
from the decoding in :mod:`operators.events`: compiled, its fields are read by the
compiled parts as C struct members, where a Python class's are looked up by name
(about 160 instructions each, some 25 of them an event across the parts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["SensorEvent"]


@dataclass(init=False)
class SensorEvent:
    """A validated sensor event; times are epoch milliseconds.

    >>> ev = SensorEvent("unit-1", 1_000, {"temp": 21.5}, seq=7)
    >>> ev.kind, ev.arrival_ms, ev == SensorEvent("unit-1", 1_000, {"temp": 21.5}, seq=7)
    ('telemetry', None, True)
    """

    source_id: str
    event_ms: int
    values: dict[str, float]
    seq: int | None = None
    kind: str = "telemetry"
    arrival_ms: int | None = None
    origin: str = ""
    extra: dict[str, Any] | None = None
    trace_parent: str | None = None

    # written out: compiled, it is C; the one dataclass would make is Python
    def __init__(self, source_id: str, event_ms: int, values: dict[str, float],
                 seq: int | None = None, kind: str = "telemetry",
                 arrival_ms: int | None = None, origin: str = "",
                 extra: dict[str, Any] | None = None, trace_parent: str | None = None
                 ) -> None:
        self.source_id = source_id
        self.event_ms = event_ms
        self.values = values
        self.seq = seq
        self.kind = kind
        self.arrival_ms = arrival_ms
        self.origin = origin
        self.extra = extra
        self.trace_parent = trace_parent

    def __reduce__(self) -> tuple:
        # Events cross processes (to a shard on another worker) pickled: a constructor
        # call pickles and loads in half the time of a dataclass's state methods.
        return (SensorEvent, (self.source_id, self.event_ms, self.values, self.seq,
                              self.kind, self.arrival_ms, self.origin, self.extra,
                              self.trace_parent))
