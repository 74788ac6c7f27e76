"""Process-wide run counters, read by the progress line and the summary.

The dataflow's steps add to these as batches pass; everything is per process
(each process of a cluster reports its own). Shards report their lag and
mode; the pipeline's lag is the worst shard's, its mode the most degraded. A
cluster's run is the sum of its processes' snapshots (:func:`combined`).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from operators.modes import worst
from sinks.breaker import StoreStatus

__all__ = ["Telemetry", "TelemetrySnapshot", "combined"]


@dataclass(frozen=True)
class TelemetrySnapshot:
    elapsed_s: float
    events: int
    decisions: int
    stale: int
    escalated: int
    dead_letters: int
    outcomes: int
    alarms: int
    lag_ms: int
    max_lag_ms: int
    mode: str
    rows_written: dict[str, int] = field(default_factory=dict)
    write_seconds: float = 0.0
    kafka_lag: int | None = None
    kafka_down_s: float | None = None  # None while the broker answers
    traced: int = 0  # decisions given a span tree
    traces_dropped: int = 0  # trees the span budget refused
    store_down_s: float | None = None  # None while store writes succeed
    store_attempts: int = 0  # failed writes in the current outage
    store_next_try_s: float | None = None  # until the next write attempt, while waiting
    store_outages: int = 0  # outages that ended in this run
    store_writing_s: float | None = None  # how long the write in progress has waited

    @property
    def events_per_s(self) -> float:
        return self.events / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def stale_pct(self) -> float:
        return 100.0 * self.stale / self.decisions if self.decisions else 0.0


_SUMMED = ("events", "decisions", "stale", "escalated", "dead_letters", "outcomes", "alarms",
           "traced", "traces_dropped", "store_outages")


def combined(snapshots: Sequence[TelemetrySnapshot]) -> TelemetrySnapshot:
    """One snapshot of a cluster's processes: their counts and rows written summed,
    the most degraded mode, the longest lag and wall time.

    >>> a = TelemetrySnapshot(10.0, 800, 800, 8, 0, 1, 0, 2, 40, 90, "NORMAL")
    >>> b = TelemetrySnapshot(9.5, 200, 200, 0, 0, 0, 0, 1, 70, 120, "CONSERVATIVE")
    >>> c = combined([a, b])
    >>> c.events, c.stale, c.dead_letters, c.max_lag_ms, c.mode, c.elapsed_s
    (1000, 8, 1, 120, 'CONSERVATIVE', 10.0)
    """
    if not snapshots:
        raise ValueError("combined() needs at least one process's snapshot")
    rows: Counter[str] = Counter()
    for snap in snapshots:
        rows.update(snap.rows_written)
    lags = [s.kafka_lag for s in snapshots if s.kafka_lag is not None]
    return TelemetrySnapshot(
        elapsed_s=max(s.elapsed_s for s in snapshots),
        lag_ms=max(s.lag_ms for s in snapshots),
        max_lag_ms=max(s.max_lag_ms for s in snapshots),
        mode=worst([s.mode for s in snapshots]),
        rows_written=dict(rows),
        write_seconds=sum(s.write_seconds for s in snapshots),
        kafka_lag=sum(lags) if lags else None,
        **{name: sum(getattr(s, name) for s in snapshots) for name in _SUMMED})


class Telemetry:
    """Thread-safe counters for one process; cheap enough to update per batch."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.monotonic()
        self._counts: Counter[str] = Counter()
        self._rows: Counter[str] = Counter()
        self._write_s = 0.0
        self._inserts = 0
        self._insert_max_s = 0.0
        self._shard_lag: dict[str, int] = {}
        self._shard_mode: dict[str, str] = {}
        self._max_lag = 0
        self._kafka_lag: dict[str, int | None] = {}
        self._kafka_down: dict[str, float | None] = {}
        self._kafka_listeners: list[Callable[[int], None]] = []
        self._store: StoreStatus | None = None  # the latest failure; None while healthy
        self._store_outages = 0
        self._writing_since: float | None = None

    def on_kafka_lag(self, listener: Callable[[int], None]) -> None:
        """Call ``listener`` with the process's total consumer lag whenever it is read."""
        self._kafka_listeners.append(listener)

    def add(self, **counts: int) -> None:
        with self._lock:
            self._counts.update(counts)

    def shard(self, shard: str, lag_ms: int, mode: str) -> None:
        with self._lock:
            self._shard_lag[shard] = lag_ms
            self._shard_mode[shard] = mode
            self._max_lag = max(self._max_lag, lag_ms)

    def kafka(self, partition: str, lag: int | None, down_s: float | None) -> None:
        """Consumer lag of a partition (None: unknown) and how long the broker has not
        answered (None: it answers)."""
        with self._lock:
            self._kafka_lag[partition] = lag
            self._kafka_down[partition] = down_s
            total = sum(v or 0 for v in self._kafka_lag.values())
        for listener in self._kafka_listeners:
            listener(total)

    def store_status(self, status: StoreStatus) -> None:
        """A store write started, failed, or succeeded (the sink's breaker)."""
        with self._lock:
            self._writing_since = status.writing_since
            if status.writing_since is not None:
                return
            if status.ok:
                self._store_outages += self._store is not None
                self._store = None
            else:
                self._store = status

    def on_write(self, table: str, rows: int, elapsed_s: float) -> None:
        with self._lock:
            self._rows[table] += rows
            self._write_s += elapsed_s
            self._inserts += 1
            self._insert_max_s = max(self._insert_max_s, elapsed_s)

    def costs(self) -> dict[str, float]:
        """Running totals for the pipeline's own metrics, and the longest insert since
        the last call (reset by it)."""
        with self._lock:
            c = self._counts
            totals = {"events": c["events"], "decisions": c["decisions"],
                      "rows": sum(self._rows.values()), "inserts": self._inserts,
                      "insert_s": self._write_s, "insert_max_s": self._insert_max_s,
                      "inference_ns": c["inference_ns"],
                      "inference_batches": c["inference_batches"],
                      "scored": c["scored"]}
            self._insert_max_s = 0.0
            return totals

    def snapshot(self) -> TelemetrySnapshot:
        with self._lock:
            c = self._counts
            mode = worst(list(self._shard_mode.values()))
            return TelemetrySnapshot(
                elapsed_s=time.monotonic() - self.started, events=c["events"],
                decisions=c["decisions"], stale=c["stale"], escalated=c["escalated"],
                dead_letters=c["dead_letters"], outcomes=c["outcomes"], alarms=c["alarms"],
                lag_ms=max(self._shard_lag.values(), default=0), max_lag_ms=self._max_lag,
                mode=mode, rows_written=dict(self._rows), write_seconds=self._write_s,
                kafka_lag=sum(v or 0 for v in self._kafka_lag.values())
                if self._kafka_lag else None,
                kafka_down_s=max((d for d in self._kafka_down.values() if d is not None),
                                 default=None),
                traced=c["traced"], traces_dropped=c["traces_dropped"],
                **self._store_fields())

    def _store_fields(self) -> dict:
        store, now = self._store, time.monotonic()
        if store is None or store.failing_since is None:
            writing = None if self._writing_since is None else now - self._writing_since
            return {"store_outages": self._store_outages, "store_writing_s": writing}
        return {"store_down_s": now - store.failing_since, "store_attempts": store.attempts,
                "store_next_try_s": None if store.next_try_at is None
                else max(0.0, store.next_try_at - now),
                "store_outages": self._store_outages}
