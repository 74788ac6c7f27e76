"""Consumer lag and broker health of the Kafka partitions one process reads.

Lag needs each partition's high watermark, which is a round trip to the
broker, and a broker that stops answering is noticed by that round trip
timing out. Done on the dataflow's thread, those waits stalled every batch
(half of a backlog run's time on a local broker), so one background thread
per source checks every partition in turn and the partitions only read what
it found: their lag for the progress line and the mode machine, and
``kafka_unreachable`` / ``kafka_recovered`` alarms, once per outage.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from confluent_kafka import Consumer, TopicPartition

from flows.telemetry import Telemetry
from operators.alarms import Alarm

__all__ = ["KafkaHealth"]

log = logging.getLogger("lucidstream.kafka")


@dataclass
class _Watched:
    consumer: Consumer  # the partition's own: its connection is the one that must work
    tp: TopicPartition
    position: int = -1  # next offset to read; negative until the first message
    failed_since: float = 0.0  # monotonic time of the first of the checks failing in a row
    failures: int = 0  # checks failed in a row; an outage from KafkaHealth.failures on
    alarms: deque[Alarm] = field(default_factory=deque)
    past_end: int | None = None  # the partition's end, when the reader was found beyond it
    checking: threading.Lock = field(default_factory=threading.Lock)  # vs. its close


class KafkaHealth:
    """Checks every watched partition's high watermark each ``every_s`` seconds,
    all partitions at once from a few background threads, each through the
    partition's own consumer (librdkafka handles are thread-safe; a check never
    overlaps the consumer's close).

    >>> health = KafkaHealth(every_s=1.0)
    >>> health.drain("sensor-events/0")  # an unwatched partition has nothing to say
    []
    """

    def __init__(self, every_s: float = 1.0, telemetry: Telemetry | None = None,
                 timeout_s: float = 1.0, failures: int = 2) -> None:
        self.every_s = every_s
        self.timeout_s = timeout_s
        # A loaded broker can miss a 0.5 s answer (seen on a local broker taking 20,000
        # events/s on 2 cores); an outage is declared after ``failures`` checks in a
        # row found no answer within ``timeout_s``: about 3 s after it began.
        self.failures = failures
        self.telemetry = telemetry
        self._watched: dict[str, _Watched] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, name: str, consumer: Consumer, topic: str, partition: int) -> None:
        """Start checking ``topic``/``partition`` (reported as ``name``) through
        ``consumer``; call :meth:`unwatch` before closing it."""
        with self._lock:
            self._watched[name] = _Watched(consumer, TopicPartition(topic, partition))
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="lucidstream-kafka-health")
                self._thread.start()

    def position(self, name: str, offset: int) -> None:
        """The partition's reader is at ``offset`` (the next one to read)."""
        watched = self._watched.get(name)
        if watched is not None:
            watched.position = offset

    def past_end(self, name: str) -> int | None:
        """The partition's end offset when its reader was found beyond it since the last
        call (the broker lost the records, or the topic was recreated), else ``None``.

        A broker answers a fetch beyond the end with an error that makes librdkafka
        reset the position, or, as tansu does, with nothing, forever: this catches
        both."""
        watched = self._watched.get(name)
        if watched is None or watched.past_end is None:
            return None
        end, watched.past_end = watched.past_end, None
        watched.position = -1
        return end

    def drain(self, name: str) -> list[Alarm]:
        """Alarms found for the partition since the last call."""
        watched = self._watched.get(name)
        if watched is None or not watched.alarms:
            return []
        alarms = []
        while watched.alarms:
            alarms.append(watched.alarms.popleft())
        return alarms

    def settle(self, name: str) -> list[Alarm]:
        """Before a partition stops: an outage still open is checked once more, now, so a
        run that ends right after the broker came back records the recovery."""
        watched = self._watched.get(name)
        if watched is not None and watched.failures >= self.failures:
            self._check(name, watched)
        return self.drain(name)

    def unwatch(self, name: str) -> None:
        """Stop checking the partition; the thread ends with the last one."""
        watched = self._watched.get(name)
        if watched is None:
            return
        with watched.checking, self._lock:  # after this, no check touches its consumer
            self._watched.pop(name, None)
            if self._watched or self._thread is None:
                return
            self._stop.set()
            thread, self._thread = self._thread, None
        thread.join(timeout=self.timeout_s * 2)

    def _run(self) -> None:
        with ThreadPoolExecutor(max_workers=8,
                                thread_name_prefix="lucidstream-kafka-check") as pool:
            while not self._stop.is_set():
                started = time.monotonic()
                with self._lock:
                    watched = list(self._watched.items())
                # At once: a round over N silent partitions takes one timeout, not N.
                list(pool.map(lambda item: self._check(*item), watched))
                self._stop.wait(max(0.0, self.every_s - (time.monotonic() - started)))

    def _check(self, name: str, w: _Watched) -> None:
        with w.checking:
            if self._watched.get(name) is w:  # not unwatched (its consumer closed) meanwhile
                self._check_locked(name, w)

    def _check_locked(self, name: str, w: _Watched) -> None:
        now, wall_ms = time.monotonic(), int(time.time() * 1000)
        try:
            _, high = w.consumer.get_watermark_offsets(w.tp, timeout=self.timeout_s,
                                                     cached=False)
        except Exception as exc:  # the broker did not answer in time, or refused
            if not w.failures:
                w.failed_since = now
            w.failures += 1
            if w.failures == self.failures:  # the miss that makes it an outage: once
                log.warning("step=ingest partition=%s broker not answering: %s", name, exc)
                w.alarms.append(Alarm(wall_ms, wall_ms, name, "kafka_unreachable", "kafka",
                                      1.0, self.every_s, {"error": str(exc)[:200]},
                                      key=f"down={wall_ms}"))
            if w.failures >= self.failures:
                self._report(name, None, now - w.failed_since)
            return
        if w.failures >= self.failures:
            down = now - w.failed_since
            w.alarms.append(Alarm(wall_ms, wall_ms, name, "kafka_recovered", "kafka", down, 0,
                                  {"down_s": round(down, 1)}, key=f"up={wall_ms}"))
        w.failures = 0
        # the end the partition's own fetches saw: a broker's answer to a listing can
        # trail it (tansu gives the last batch's first offset), a fetch's cannot
        _, fetched_end = w.consumer.get_watermark_offsets(w.tp, cached=True)
        if 0 <= fetched_end < w.position:
            w.past_end = fetched_end
        position = w.position if w.position >= 0 else high
        self._report(name, max(0, high - position), None)

    def _report(self, name: str, lag: int | None, down_s: float | None) -> None:
        if self.telemetry is not None:
            self.telemetry.kafka(name, lag, down_s)
