"""Kafka: connection settings, topic admin, and the output sink for decisions.

Any ``confluent-kafka`` (librdkafka) setting passes through unchanged
(``security.protocol``, ``sasl.*``, ``ssl.*``, ...): the CLI's ``--kafka-opt
KEY=VALUE`` or ``LUCIDSTREAM_KAFKA_OPTS="k=v;k=v"``.

:class:`KafkaRowsSink` produces decision and dead-letter rows as JSON
messages keyed by ``source_id`` (so one source keeps its order), with a W3C
``traceparent`` header on each decision. Delivery is at-least-once: each
``write_batch`` is flushed before it returns, and a replay produces the same
``decision_id`` again, so consumers deduplicate on it.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

import orjson
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from operators.errors import ConfigError, InputError
from operators.ids import span_id_for
from operators.records import Rows

__all__ = ["KafkaRowsSink", "check_broker", "client_config", "ensure_topic", "parse_opts",
           "produce_simulated"]

log = logging.getLogger("lucidstream.kafka")
# librdkafka's own log lines go here instead of straight to stderr; the CLI keeps
# them quiet, since lucidstream reports broker trouble itself (one-line errors,
# health alarms). LUCIDSTREAM_LOG=DEBUG shows them.
client_log = logging.getLogger("lucidstream.librdkafka")


def client_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with librdkafka's logging routed through Python logging."""
    return {"logger": client_log, **config}


def parse_opts(opts: list[str] | str | None) -> dict[str, str]:
    """``["k=v", ...]`` or ``"k=v;k=v"`` to a settings dict.

    >>> parse_opts("security.protocol=SSL;ssl.ca.location=/ca.pem")
    {'security.protocol': 'SSL', 'ssl.ca.location': '/ca.pem'}
    """
    if not opts:
        return {}
    items = [o for o in opts.split(";") if o.strip()] if isinstance(opts, str) else opts
    settings = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"Kafka option {item!r} is not KEY=VALUE "
                              "(for example security.protocol=SASL_SSL)")
        settings[key.strip()] = value.strip()
    return settings


def check_broker(config: dict[str, Any], timeout: float = 5.0) -> dict[str, int]:
    """Topic name to partition count; a one-line InputError when unreachable."""
    try:
        admin = AdminClient(client_config({**config, "socket.connection.setup.timeout.ms":
                                           int(timeout * 1000)}))
    except KafkaException as exc:  # a setting librdkafka does not know or accept
        raise ConfigError(f"Kafka settings rejected: {exc.args[0].str() if exc.args else exc}; "
                          "check --kafka-opt and LUCIDSTREAM_KAFKA_OPTS") from None
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise InputError(f"cannot reach Kafka at {config['bootstrap.servers']} within "
                         f"{timeout:.0f} s ({exc.args[0].str() if exc.args else exc}); check "
                         "the address and that the broker is running") from None
    return {name: len(topic.partitions) for name, topic in metadata.topics.items()}


def ensure_topic(config: dict[str, Any], topic: str, partitions: int = 1) -> int:
    """Create ``topic`` when missing; returns its partition count."""
    existing = check_broker(config)
    if topic in existing:
        return existing[topic]
    admin = AdminClient(client_config(config))
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions,
                                            replication_factor=1)])
    try:
        futures[topic].result(10)
    except KafkaException as exc:
        if "TOPIC_ALREADY_EXISTS" not in str(exc):
            raise InputError(f"cannot create Kafka topic {topic!r}: {exc}") from None
    return partitions


def produce(producer: Producer, topic: str, value: bytes, key: bytes | None, headers: Any,
            on_delivery: Any) -> None:
    """Produce one message, waiting while librdkafka's local queue is full."""
    while True:
        try:
            producer.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
            return
        except BufferError:  # local queue full: let it drain, then retry
            producer.poll(0.1)


class _Ticks(Protocol):
    period_ms: float

    def tick(self, base_ms: int) -> list[dict]: ...


def produce_simulated(config: dict[str, Any], topic: str, generator: _Ticks, events: int,
                      rate: float = 0.0) -> int:
    """Produce ``events`` simulator events keyed by ``source_id``, ``event_time`` stamped
    at send time; paced at ``rate`` events/s when positive. Returns the count sent."""
    producer = Producer(client_config({"linger.ms": 5, "compression.type": "lz4", **config}))
    failures: list[str] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    sent, started = 0, time.monotonic()
    while sent < events:
        for event in generator.tick(0)[: events - sent]:
            event.pop("arrival_time", None)
            event["event_time"] = time.time_ns() // 1_000_000
            produce(producer, topic, orjson.dumps(event), event["source_id"].encode(), None,
                    on_delivery)
            sent += 1
        producer.poll(0)
        if rate > 0:
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    remaining = producer.flush(60)
    if failures or remaining:
        raise InputError(f"Kafka did not take {len(failures) + remaining} of {events} "
                         f"messages ({failures[0] if failures else 'flush timed out'})")
    return sent


class _ProducerPartition(StatelessSinkPartition[Rows]):
    def __init__(self, config: dict[str, Any], topics: dict[str, str]) -> None:
        self._producer = Producer(client_config({"linger.ms": 20, "compression.type": "lz4",
                                                **config}))
        self._topics = topics
        self._failed: list[str] = []

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._failed.append(str(err))

    def write_batch(self, items: list[Rows]) -> None:
        for rows in items:
            topic = self._topics.get(rows.table)
            if topic is None or not rows.rows:
                continue
            columns = rows.columns
            key_at = columns.index("source_id") if "source_id" in columns else None
            is_decision = rows.table == "decisions"
            for row in rows.rows:
                record = dict(zip(columns, row, strict=True))
                headers = None
                if is_decision:
                    span = span_id_for(record["decision_id"])
                    headers = [("traceparent", f"00-{record['trace_id']}-{span}-01".encode())]
                key = str(row[key_at]).encode() if key_at is not None else None
                produce(self._producer, topic, orjson.dumps(record), key, headers,
                        self._on_delivery)
        self._producer.flush(30)
        if self._failed:
            failed, self._failed = self._failed, []
            raise InputError(f"Kafka did not take {len(failed)} messages: {failed[0]}")

    def close(self) -> None:
        self._producer.flush(30)


class KafkaRowsSink(DynamicSink[Rows]):
    """Produces rows of the tables in ``topics`` (table name to topic name)."""

    def __init__(self, config: dict[str, Any], topics: dict[str, str]) -> None:
        self.config = config
        self.topics = topics

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _ProducerPartition:
        return _ProducerPartition(self.config, self.topics)
