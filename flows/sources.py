"""Bytewax sources that emit batches: a JSONL file and a tick-driven simulator.

Every item is a :class:`RawBatch` of ``(origin, payload)`` pairs, so the
per-item cost of Bytewax is paid once per batch, not once per event. Both
sources are resumable: their snapshot is the position to continue from.
"""

from __future__ import annotations

import heapq
import itertools
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from flows.simulator import START_MS
from operators.alarms import Alarm
from operators.errors import InputError

__all__ = ["STOP", "JSONLSource", "RawBatch", "SimulatorSource", "TickGenerator"]

# Set to end every source at its next batch (Ctrl-C in the CLI): the flow drains cleanly.
STOP = threading.Event()


@dataclass(slots=True)
class RawBatch:
    """Raw input records, when the pipeline read them (monotonic ns), and any
    alarms the source raised about itself (a broker that stopped answering)."""

    records: list[tuple[str, Any]] | list[tuple[str, Any, str | None]]
    ingest_ns: int = field(default_factory=time.monotonic_ns)
    alarms: list[Alarm] = field(default_factory=list)
    # each record's arrival (epoch ms) when the source knows it and the record may not
    # say (a replayed Kafka record's timestamp); None: the record's own, if any
    arrivals: list[int | None] | None = None


class _JSONLPartition(StatefulSourcePartition[RawBatch, tuple[int, int]]):
    def __init__(self, path: str, batch_size: int, resume: tuple[int, int] | None) -> None:
        self._path = path
        self._batch_size = batch_size
        self._file = open(path, "rb")  # noqa: SIM115 - closed in close()
        self._offset, self._line = resume or (0, 0)
        self._file.seek(self._offset)

    def next_batch(self) -> list[RawBatch]:
        if STOP.is_set():
            raise StopIteration
        lines = list(itertools.islice(self._file, self._batch_size))
        if not lines:
            raise StopIteration
        first = self._line
        self._offset += sum(map(len, lines))
        self._line = first + len(lines)
        payloads = [line.strip() for line in lines]
        if first == 0 and payloads[0].startswith(b"\xef\xbb\xbf"):
            payloads[0] = payloads[0][3:]  # a UTF-8 byte order mark marks the file, not the event
        prefix = f"file:{self._path}:"
        return [RawBatch([(f"{prefix}{number}", payload)
                          for number, payload in enumerate(payloads, first + 1) if payload])]

    def snapshot(self) -> tuple[int, int]:
        return (self._offset, self._line)

    def close(self) -> None:
        self._file.close()


class JSONLSource(FixedPartitionedSource[RawBatch, tuple[int, int]]):
    """One partition per file; resumes at the byte offset of the last snapshot."""

    def __init__(self, paths: list[str] | str, batch_size: int = 2_000) -> None:
        self.paths = [paths] if isinstance(paths, str) else list(paths)
        self.batch_size = batch_size
        for path in self.paths:
            if not os.path.isfile(path):
                raise InputError(f"input file {path!r} does not exist or is not a file")
            if not os.access(path, os.R_OK):
                raise InputError(f"input file {path!r} is not readable")

    def list_parts(self) -> list[str]:
        return [os.path.abspath(p) for p in self.paths]

    def build_part(self, step_id: str, for_part: str, resume_state: tuple[int, int] | None
                   ) -> _JSONLPartition:
        return _JSONLPartition(for_part, self.batch_size, resume_state)


class ArrivalOrder:
    """Reorders simulated events into ``arrival_time`` order, as a pipeline sees them.

    Events of one tick all have ``event_time >= base``, so once tick ``base``
    is generated every buffered event that arrived before ``base`` is final.

    >>> order = ArrivalOrder()
    >>> order.push([{"event_time": 0, "arrival_time": 90}, {"event_time": 50,
    ...             "arrival_time": 60}], base_ms=0)
    []
    >>> [e["arrival_time"] for e in order.push([], base_ms=100)]
    [60, 90]
    """

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, dict]] = []
        self._n = 0

    def push(self, events: list[dict], base_ms: int) -> list[dict]:
        for event in events:
            self._n += 1
            heapq.heappush(self._heap, (event.get("arrival_time", event["event_time"]),
                                        self._n, event))
        ready = []
        while self._heap and self._heap[0][0] < base_ms:
            ready.append(heapq.heappop(self._heap)[2])
        return ready

    def drain(self) -> list[dict]:
        ready = [item[2] for item in sorted(self._heap)]
        self._heap = []
        return ready


class TickGenerator(Protocol):
    """A simulator: each ``tick(base_ms)`` returns the events of one period."""

    period_ms: float

    def tick(self, base_ms: int) -> list[dict]: ...


@dataclass
class SimulatedStream:
    """A simulator's events as a pipeline receives them on the replay clock: tick
    after tick from ``start_ms``, in ``arrival_time`` order, the first ``limit``
    generated (all of them when ``None``).

    >>> from flows.simulator import FleetSimulator
    >>> stream = SimulatedStream(FleetSimulator(robots=3, seed=7), start_ms=0, limit=5)
    >>> first = stream.next_ticks(1)          # what has surely arrived by the next tick
    >>> rest = stream.next_ticks(10)          # the limit reached: the rest, drained
    >>> len(first) + len(rest), stream.exhausted, stream.ticks
    (5, True, 2)
    """

    generator: Any
    start_ms: int = START_MS
    limit: int | None = None
    generated: int = 0
    ticks: int = 0
    order: ArrivalOrder = field(default_factory=ArrivalOrder)

    @property
    def exhausted(self) -> bool:
        return self.limit is not None and self.generated >= self.limit

    def next_ticks(self, count: int) -> list[dict]:
        """The events that have arrived after ``count`` more ticks (fewer once the
        limit is reached, after which the rest is delivered at once)."""
        ready: list[dict] = []
        for _ in range(count):
            if self.exhausted:
                break
            base = int(self.start_ms + self.ticks * self.generator.period_ms)
            self.ticks += 1
            events = self.generator.tick(base)
            if self.limit is not None:
                events = events[: self.limit - self.generated]
            self.generated += len(events)
            ready += self.order.push(events, base)
        if self.exhausted:
            ready += self.order.drain()
        return ready


@dataclass
class _SimState:
    stream: SimulatedStream
    emitted: int = 0


class _SimPartition(StatefulSourcePartition[RawBatch, _SimState]):
    def __init__(self, source: SimulatorSource, resume: _SimState | None) -> None:
        self._src = source
        self._state = resume or _SimState(SimulatedStream(
            source.make_generator(), source.start_ms, None if source.live else source.events))
        stream = self._state.stream
        self._started = time.time() * 1000 - stream.ticks * stream.generator.period_ms

    def _done(self, now_ms: float) -> bool:
        src, state = self._src, self._state
        if STOP.is_set() or (src.events is not None and state.emitted >= src.events):
            return True
        if src.duration_s is None:
            return False
        stream = state.stream
        elapsed = (now_ms - self._started) if src.live else \
            stream.ticks * stream.generator.period_ms
        return elapsed >= src.duration_s * 1000

    def next_batch(self) -> list[RawBatch]:
        src, state = self._src, self._state
        stream = state.stream
        gen = stream.generator
        now = time.time() * 1000
        if self._done(now):
            raise StopIteration
        if src.live:  # stamped at the tick's scheduled wall time, delivered as generated
            due = int((now - self._started) / gen.period_ms) + 1 - stream.ticks
            events = []
            for _ in range(max(min(due, src.max_ticks_per_batch), 0)):
                events += gen.tick(int(self._started + stream.ticks * gen.period_ms))
                stream.ticks += 1
        else:
            events = stream.next_ticks(src.max_ticks_per_batch)
        records: list[tuple[str, Any]] = [
            (f"sim:{event['source_id']}:{event.get('seq', stream.ticks)}", event)
            for event in events]
        if src.events is not None and state.emitted + len(records) > src.events:
            records = records[: src.events - state.emitted]
        state.emitted += len(records)
        return [RawBatch(records)] if records else []

    def next_awake(self) -> datetime | None:
        if not self._src.live:
            return None
        stream = self._state.stream
        at = (self._started + stream.ticks * stream.generator.period_ms) / 1000
        return datetime.fromtimestamp(at, tz=timezone.utc)

    def snapshot(self) -> _SimState:
        import copy

        return copy.deepcopy(self._state)


class SimulatorSource(FixedPartitionedSource[RawBatch, _SimState]):
    """Runs a :class:`TickGenerator`, paced by the wall clock when ``live``.

    Live, ticks are stamped at their scheduled wall time, so a slow pipeline
    sees its backlog as age. Not live, ticks follow each other from
    ``start_ms`` as fast as the flow takes them (the replay clock uses the
    generator's ``arrival_time``).
    """

    def __init__(
        self, make_generator: Callable[[], TickGenerator], live: bool,
        events: int | None = None, duration_s: float | None = None,
        start_ms: int = START_MS, max_ticks_per_batch: int = 40,
    ) -> None:
        self.make_generator = make_generator
        self.live = live
        self.events = events
        self.duration_s = duration_s
        self.start_ms = start_ms
        self.max_ticks_per_batch = max_ticks_per_batch

    def list_parts(self) -> list[str]:
        return ["simulator"]

    def build_part(self, step_id: str, for_part: str, resume_state: _SimState | None
                   ) -> _SimPartition:
        return _SimPartition(self, resume_state)
