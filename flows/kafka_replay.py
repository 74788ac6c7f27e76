"""Replaying a Kafka topic on the pipeline clock (``run --source kafka --replay``).

A topic's partitions are read as one stream in time order, as a file is: each
record's time is its Kafka timestamp (the producer's send time, which a replay
takes as the record's arrival; an ``arrival_time`` in the message itself wins),
and the partitions are merged by it. As Flink does, each partition has an
event-time watermark (the newest timestamp read from it) and the stream's
watermark is the minimum over the active partitions; a record is handed on only
once the watermark has passed it, so a partition that runs ahead waits for the
others (alignment: past ``max_buffered`` waiting records it is paused at the
broker). A partition at its end, or idle (nothing new for ``idle_ms`` of wall
time), is not active and holds nobody back; a record it sends later is handed on
as it comes, late, and decided stale if it is.

Batches are ``batch_size`` records, as a file's, until the end of the data: a topic
produced at a steady rate replays to the decisions of the same records read from a
file. One partition of the dataflow reads every Kafka partition, so in a cluster
one process reads and Bytewax spreads the decisions over all of them by shard; the
order each shard sees is the merged order either way.

Offsets (of the next record not yet handed on, per partition) live in Bytewax's
recovery snapshots, as for :class:`~flows.kafka_input.KafkaSource`.
"""

from __future__ import annotations

import bisect
import heapq
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from operator import itemgetter
from typing import Any

from bytewax.inputs import StatefulSourcePartition
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    TIMESTAMP_NOT_AVAILABLE,
    TopicPartition,
)

from flows.kafka_input import (
    KafkaSource,
    consumer_for,
    offset_reset,
    partition_end,
    reread_past_end,
    trace_parent_of,
)
from flows.sources import STOP, RawBatch
from operators.alarms import Alarm

__all__ = ["KafkaReplaySource"]

_key = itemgetter(0)


@dataclass(slots=True)
class _Lane:
    """One topic-partition: what was read from it and not yet handed on."""

    name: str
    tp: TopicPartition
    next_offset: int  # of the next record to read
    waiting: deque = field(default_factory=deque)  # (key, offset, origin, value, parent, ts)
    watermark: float = float("-inf")  # the newest timestamp read (never runs back)
    at_end: bool = False
    paused: bool = False
    last_read: float = field(default_factory=time.monotonic)

    def first_unsent(self) -> int:
        return self.waiting[0][1] if self.waiting else self.next_offset


class _ReplayPartition(StatefulSourcePartition[RawBatch, dict[str, int]]):
    def __init__(self, source: KafkaReplaySource, resume: dict[str, int] | None) -> None:
        self._src = source
        self._consumer = consumer_for(source)
        start = OFFSET_BEGINNING if source.start == "earliest" else OFFSET_END
        self._lanes: dict[tuple[str, int], _Lane] = {}
        for topic, count in source.partitions.items():
            for p in range(count):
                name = f"{topic}/{p}"
                offset = (resume or {}).get(name, start)
                self._lanes[topic, p] = _Lane(name, TopicPartition(topic, p, offset), offset)
        self._consumer.assign([lane.tp for lane in self._lanes.values()])
        self._resets: list[Alarm] = []  # offsets that went backwards, for the next batch
        self._health = source.health()
        for (topic, p), lane in self._lanes.items():
            self._health.watch(lane.name, self._consumer, topic, p)
        self._awake: datetime | None = None

    def _read(self) -> None:
        """Move what librdkafka has queued into the lanes, without waiting."""
        src, lanes, now = self._src, self._lanes, time.monotonic()
        for msg in self._consumer.consume(src.batch_size, timeout=0):
            lane = lanes.get((msg.topic(), msg.partition()))
            if lane is None:
                continue
            at_end = partition_end(msg, lane.name)
            if at_end is not None:
                lane.at_end = lane.at_end or at_end
                continue
            kind, stamp = msg.timestamp()
            ts = None if kind == TIMESTAMP_NOT_AVAILABLE else stamp
            if ts is not None and ts > lane.watermark:
                lane.watermark = ts
            offset = msg.offset()
            reset = offset_reset(lane.name, lane.next_offset, offset)
            if reset is not None:
                self._resets.append(reset)
            # ordered by the lane's watermark, so a lane's own order is never changed
            lane.waiting.append((lane.watermark, offset, f"kafka:{lane.name}/{offset}",
                                 msg.value(), trace_parent_of(msg), ts))
            lane.next_offset = offset + 1
            lane.at_end = False
            lane.last_read = now
        self._align()

    def _rewind_past_end(self) -> None:
        """A lane found beyond its partition's end reads it again from its start."""
        for lane in self._lanes.values():
            resets = reread_past_end(self._health, self._consumer, lane.name, lane.tp,
                                     lane.next_offset)
            if resets is not None:
                self._resets += resets
                lane.next_offset = -1

    def _align(self) -> None:
        """Pause a lane that has too much waiting (it runs ahead); resume it at half."""
        cap = self._src.max_buffered
        for lane in self._lanes.values():
            if not lane.paused and len(lane.waiting) >= cap:
                self._consumer.pause([lane.tp])
                lane.paused = True
            elif lane.paused and len(lane.waiting) <= cap // 2:
                self._consumer.resume([lane.tp])
                lane.paused = False

    def _watermark(self) -> float:
        """The minimum watermark over the active lanes, those that may still send a
        record (not at their end, not idle); +inf when none is: whatever waits is all
        there is for now."""
        idle_s, now = self._src.idle_ms / 1000, time.monotonic()
        active = [lane.watermark for lane in self._lanes.values()
                  if not (lane.at_end or now - lane.last_read >= idle_s)]
        return min(active, default=float("inf"))

    def next_batch(self) -> list[RawBatch]:
        src = self._src
        if STOP.is_set():
            raise StopIteration
        self._rewind_past_end()
        self._read()
        alarms = [a for lane in self._lanes.values() for a in self._health.drain(lane.name)]
        alarms, self._resets = self._resets + alarms, []
        watermark = self._watermark()
        want = src.batch_size
        if src.max_events is not None:
            want = min(want, src.max_events - src.taken)
            if want <= 0:
                raise StopIteration
        ready = sum(len(lane.waiting) if lane.watermark <= watermark else  # keys ascend
                    bisect.bisect_right(lane.waiting, watermark, key=_key)
                    for lane in self._lanes.values())
        if ready < want and watermark != float("inf"):
            self._awake = datetime.now(timezone.utc) + timedelta(seconds=src.poll_interval_s)
            return [RawBatch([], alarms=alarms)] if alarms else []  # a full batch, or the end
        records, arrivals = self._merge(watermark, want)
        if not records and src.stop_at_end and all(lane.at_end for lane in self._lanes.values()):
            alarms += [a for lane in self._lanes.values()
                       for a in self._health.settle(lane.name)]
            if not alarms:
                raise StopIteration
        src.taken += len(records)
        for lane in self._lanes.values():
            self._health.position(lane.name, lane.first_unsent())
        self._align()
        self._awake = None if records else \
            datetime.now(timezone.utc) + timedelta(seconds=src.poll_interval_s)
        if records or alarms:
            return [RawBatch(records, alarms=alarms, arrivals=arrivals)]
        return []

    def _merge(self, watermark: float, want: int) -> tuple[list, list[int | None]]:
        """Up to ``want`` waiting records the watermark has passed, in time order (ties:
        partition, then offset)."""
        lanes = list(self._lanes.values())
        heap = [(lane.waiting[0][0], i, lane.waiting[0][1]) for i, lane in enumerate(lanes)
                if lane.waiting and lane.waiting[0][0] <= watermark]
        heapq.heapify(heap)
        records: list[tuple[str, Any, str | None]] = []
        arrivals: list[int | None] = []
        while heap and len(records) < want:
            _, i, _ = heapq.heappop(heap)
            waiting = lanes[i].waiting
            _, _, origin, value, parent, ts = waiting.popleft()
            records.append((origin, value, parent))
            arrivals.append(ts)
            if waiting and waiting[0][0] <= watermark:
                heapq.heappush(heap, (waiting[0][0], i, waiting[0][1]))
        return records, arrivals

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> dict[str, int]:
        return {lane.name: lane.first_unsent() for lane in self._lanes.values()}

    def close(self) -> None:
        for lane in self._lanes.values():
            self._health.unwatch(lane.name)
        self._consumer.close()


class KafkaReplaySource(KafkaSource):
    """The topics' partitions merged by timestamp under a watermark (see the module).

    ``idle_ms``: wall time without a record after which a partition no longer holds
    the watermark back; ``max_buffered``: records waiting per partition before it is
    paused at the broker.
    """

    def __init__(self, config: dict[str, Any], topics: list[str], *, idle_ms: int = 2_000,
                 max_buffered: int = 20_000, **kwargs: Any) -> None:
        super().__init__(config, topics, **kwargs)
        self.idle_ms = idle_ms
        self.max_buffered = max_buffered

    def list_parts(self) -> list[str]:
        return ["replay"]

    def build_part(self, step_id: str, for_part: str,  # type: ignore[override]
                   resume_state: dict[str, int] | None) -> _ReplayPartition:
        return _ReplayPartition(self, resume_state)
