"""Kafka input: one Bytewax partition per topic-partition, one batch per poll.

Why not Bytewax's ``KafkaSource``: it emits one item per message, and Bytewax
costs microseconds per item per step; this source emits one
:class:`~flows.sources.RawBatch` per poll, like the file source. It also
reports consumer lag (high watermark minus position, per partition), notices
a broker that stops answering within about ``health_every_s`` (an alarm row,
once per outage, and the progress line; checked off the dataflow's thread by
:class:`~flows.kafka_health.KafkaHealth`), and can stop at the end of every
partition (``stop_at_end``) for batch jobs and tests.

Offsets live in Bytewax's recovery snapshots, not in the consumer group: a
restart with ``--recovery-dir`` resumes from the last snapshot (at-least-once
input; the store's deterministic IDs make the effect exactly-once). Without
recovery a run starts from ``start`` (``earliest`` by default).

Offsets that go backwards (a broker restarted without its data, a topic deleted
and recreated) or out of range (the position is past the partition's end, or
before its start after retention): the policy is never to skip. The consumer
resumes from the partition's earliest offset, whatever ``start`` says, and a
``kafka_offset_reset`` alarm records the partition, the position it had and the
offset it got; a record read twice gets the decision it got the first time
(same ID), so the store keeps one.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from flows.kafka_health import KafkaHealth
from flows.sources import STOP, RawBatch
from flows.telemetry import Telemetry
from operators.alarms import Alarm
from operators.errors import InputError
from sinks.kafka import check_broker, client_config

__all__ = ["KafkaSource", "consumer_for", "offset_reset", "partition_end", "reread_past_end",
           "trace_parent_of"]

log = logging.getLogger("lucidstream.kafka")


def partition_end(msg: Any, name: str) -> bool | None:
    """``None`` for a record; for a message that is not one, whether it marks the end
    of partition ``name`` (``True``) or an error, which is logged (``False``)."""
    err = msg.error()
    if err is None:
        return None
    if err.code() == KafkaError._PARTITION_EOF:
        return True
    log.warning("step=ingest partition=%s error=%s", name, err)
    return False


def reread_past_end(health: KafkaHealth, consumer: Consumer, name: str, tp: TopicPartition,
                    expected: int) -> list[Alarm] | None:
    """``None`` unless partition ``name`` was found read beyond its end; then its position
    is moved back to its start and the ``kafka_offset_reset`` alarm (if ``expected``, the
    reader's next offset, was known) is returned. The caller forgets its position."""
    end = health.past_end(name)
    if end is None:
        return None
    start = TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING)
    try:
        consumer.seek(start)
    except KafkaException:  # not fetching yet: assigning it again sets the position
        consumer.incremental_unassign([start])
        consumer.incremental_assign([start])
    reset = offset_reset(name, expected, end)
    return [] if reset is None else [reset]


def offset_reset(name: str, expected: int, got: int) -> Alarm | None:
    """An alarm when a partition's next record is ``got`` though ``expected`` was next
    (``None`` when nothing went backwards; a forward jump is normal: transaction
    markers and compaction take offsets too)."""
    if expected < 0 or got >= expected:  # before the first record, or in order
        return None
    wall_ms = time.time_ns() // 1_000_000
    log.error("step=ingest partition=%s event=offset_reset expected=%d got=%d (the topic "
              "was recreated or the broker lost its data; reading on from its earliest "
              "offset)", name, expected, got)
    return Alarm(wall_ms, wall_ms, name, "kafka_offset_reset", "kafka", expected - got, 0,
                 {"expected": expected, "got": got,
                  "policy": "read on from the partition's earliest offset; a record read "
                            "again keeps its decision ID"},
                 key=f"reset={expected}>{got}@{wall_ms}")


def trace_parent_of(msg: Any) -> str | None:
    """The W3C ``traceparent`` header of a consumed message, if it has one."""
    headers = msg.headers()
    if headers:
        for key, value in headers:
            if key == "traceparent" and value:
                return str(value.decode("ascii", "replace"))
    return None


def consumer_for(source: KafkaSource) -> Consumer:
    """A consumer with the source's settings; offsets are assigned, never committed."""
    return Consumer(client_config({
        "group.id": source.group_id, "enable.auto.commit": False,
        # out of range (a recreated topic, a broker that lost its data, retention):
        # never skip; the first position is assigned explicitly from `start`
        "enable.partition.eof": True, "auto.offset.reset": "earliest",
        # librdkafka prefetches up to 64 MB per partition by default, and a queued
        # message pins its whole fetch response (up to 50 MB): a small queue of
        # small responses bounds memory at no cost in speed (RESULTS.md, "Settings
        # measured"). A larger message still arrives whole: librdkafka returns the
        # first message of a fetch at any size.
        "queued.max.messages.kbytes": 8_192,
        "fetch.max.bytes": max(1 << 20, int(source.config.get("message.max.bytes",
                                                               1_000_000))),
        # Its default lets a fetch wait up to 500 ms for data, which is then the
        # latency of a quiet live stream; 10 ms keeps it near the poll interval
        # (RESULTS.md, "Settings measured"). Override with --kafka-opt.
        "fetch.wait.max.ms": 10,
        **source.config,
    }))


class _KafkaPartition(StatefulSourcePartition[RawBatch, int]):
    def __init__(self, source: KafkaSource, topic: str, partition: int,
                 resume: int | None) -> None:
        self._src, self._topic, self._partition = source, topic, partition
        self._name = f"{topic}/{partition}"
        self._consumer = consumer_for(source)
        start = OFFSET_BEGINNING if source.start == "earliest" else OFFSET_END
        self._offset = resume if resume is not None else start
        self._tp = TopicPartition(topic, partition, self._offset)
        self._consumer.assign([self._tp])
        self._eof = False
        self._awake: datetime | None = None
        self._health = source.health()
        self._health.watch(self._name, self._consumer, topic, partition)
        self._health.position(self._name, self._offset)

    def next_batch(self) -> list[RawBatch]:
        src = self._src
        if STOP.is_set():
            raise StopIteration
        alarms = self._health.drain(self._name)
        resets = reread_past_end(self._health, self._consumer, self._name, self._tp,
                                 self._offset)
        if resets is not None:
            alarms += resets
            self._offset = -1
        records: list[tuple[str, Any, str | None]] = []
        prefix = f"kafka:{self._name}/"
        # Take what librdkafka has queued, without waiting: a blocking poll held the
        # worker up to its timeout per partition in turn, even while the others had
        # data. A partition that gave less than a full batch is asked again after
        # poll_interval_s (next_awake), so a live stream still comes in batches.
        messages = self._consumer.consume(src.batch_size, timeout=0)
        self._awake = None if len(messages) >= src.batch_size else \
            datetime.now(timezone.utc) + timedelta(seconds=src.poll_interval_s)
        for msg in messages:
            at_end = partition_end(msg, self._name)
            if at_end is not None:
                self._eof = self._eof or at_end
                continue
            self._eof = False
            offset = msg.offset()
            reset = offset_reset(self._name, self._offset, offset)
            if reset is not None:
                alarms.append(reset)
            records.append((f"{prefix}{offset}", msg.value(), trace_parent_of(msg)))
            self._offset = offset + 1
        if src.stop_at_end and self._eof and not records and not alarms:
            alarms = self._health.settle(self._name)
            if not alarms:
                raise StopIteration
        if src.max_events is not None:
            if src.taken >= src.max_events:
                raise StopIteration
            records = records[: src.max_events - src.taken]
            src.taken += len(records)
        self._health.position(self._name, self._offset)
        if records or alarms:
            return [RawBatch(records, alarms=alarms)]
        return []

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> int:
        return self._offset

    def close(self) -> None:
        self._health.unwatch(self._name)
        self._consumer.close()


class KafkaSource(FixedPartitionedSource[RawBatch, int]):
    """Sensor (and outcome) topics as batches; partitions spread over workers."""

    def __init__(
        self, config: dict[str, Any], topics: list[str], *, group_id: str = "lucidstream",
        batch_size: int = 2_000, stop_at_end: bool = False, start: str = "earliest",
        telemetry: Telemetry | None = None, poll_interval_s: float = 0.01,
        health_every_s: float = 1.0, optional_topics: tuple[str, ...] = (),
        max_events: int | None = None,
    ) -> None:
        if start not in ("earliest", "latest"):
            raise InputError(f"start={start!r}: use earliest or latest")
        self.config = config
        self.group_id = group_id
        self.batch_size = batch_size
        self.stop_at_end = stop_at_end
        self.start = start
        self.telemetry = telemetry
        self.poll_interval_s = poll_interval_s
        self.health_every_s = health_every_s
        # Stop after this many messages in this process (all its partitions together).
        self.max_events = max_events
        self.taken = 0
        existing = check_broker(config)
        missing = [t for t in topics if t not in existing and t not in optional_topics]
        if missing:
            raise InputError(f"Kafka topic {missing[0]!r} does not exist on "
                             f"{config['bootstrap.servers']}; create it, or produce to it "
                             "with: lucidstream simulate --kafka HOST:PORT")
        self.partitions = {t: existing[t] for t in topics if t in existing}
        self._health: KafkaHealth | None = None

    def health(self) -> KafkaHealth:
        """The process's health watcher of this source's partitions (made on first use:
        each process builds its own)."""
        if self._health is None:
            self._health = KafkaHealth(self.health_every_s, self.telemetry)
        return self._health

    def list_parts(self) -> list[str]:
        return [f"{t}/{p}" for t, count in self.partitions.items() for p in range(count)]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None
                   ) -> _KafkaPartition:
        topic, _, partition = for_part.rpartition("/")
        return _KafkaPartition(self, topic, int(partition), resume_state)
