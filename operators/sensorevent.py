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


# A batch of events as columns, one list per field, in the constructor's order.
EventColumns = tuple[list[str], list[int], list[dict[str, float]], list[int | None], list[str],
                     list[int | None], list[str], list[dict[str, Any] | None],
                     list[str | None]]


def to_columns(events: list[SensorEvent]) -> EventColumns:
    """``events`` as one list per field: what a batch crossing processes is pickled as.
    Pickle writes a list of ints or strings in C, where each event would be a
    constructor call to record and to replay (about half the cost, both ways).

    >>> events = [SensorEvent("u1", 5, {"t": 1.0}, seq=3), SensorEvent("u2", 6, {})]
    >>> from_columns(to_columns(events)) == events
    True
    """
    return ([e.source_id for e in events], [e.event_ms for e in events],
            [e.values for e in events], [e.seq for e in events], [e.kind for e in events],
            [e.arrival_ms for e in events], [e.origin for e in events],
            [e.extra for e in events], [e.trace_parent for e in events])


def from_columns(columns: EventColumns) -> list[SensorEvent]:
    """The events :func:`to_columns` took apart."""
    source_id, event_ms, values, seq, kind, arrival_ms, origin, extra, trace_parent = columns
    n = len(source_id)
    if not all(len(column) == n for column in columns):
        raise ValueError(f"event columns of lengths {[len(c) for c in columns]}: a batch's "
                         "columns must be equally long (a corrupted or foreign pickle?)")
    return [SensorEvent(source_id[i], event_ms[i], values[i], seq[i], kind[i], arrival_ms[i],
                        origin[i], extra[i], trace_parent[i]) for i in range(n)]
