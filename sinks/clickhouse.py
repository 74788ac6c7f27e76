"""The batched, idempotent ClickHouse sink for Bytewax.

Each item is a :class:`~operators.records.Rows` (one table, many rows). Every
``write_batch`` call merges the items per table and writes each table with one
columnar insert, so the number of inserts follows the number of batches, not
events.

Delivery: at-least-once underneath. A write that fails because the store is
down, slow or overloaded is retried with backoff behind a circuit breaker
(:mod:`sinks.breaker`) for as long as the store is down; meanwhile the flow
waits (backpressure: the sources are not read, nothing is dropped). A run
stopped during an outage (Ctrl-C, ``give_up_after_s``) ends with a
:class:`~operators.errors.StoreUnavailable`; with Bytewax recovery it resumes
from its last snapshot, which never covers unstored rows, and writes again.
The *effect* is exactly-once because every row carries a deterministic ID in a
ReplacingMergeTree (read with FINAL); a retried block carries the same
deduplication token, so a retry that did land is not stored twice even before
ClickHouse merges.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from bytewax.outputs import (
    DynamicSink,
    FixedPartitionedSink,
    StatefulSinkPartition,
    StatelessSinkPartition,
)

from operators.errors import ConfigError
from operators.records import Rows
from sinks.breaker import CircuitBreaker, StoreStatus
from sinks.enginethreads import EngineThreads, checked_nice
from sinks.store import Store, normalize_dsn, open_store
from sinks.writer import BackgroundWriter

__all__ = ["ClickHouseSink", "EmbeddedStoreSink", "merge_rows", "owns_store"]

# the embedded stores whose sink partition this process built: it holds them open
_OWNED: set[str] = set()


def owns_store(dsn: str | None) -> bool:
    """Whether this process owns the embedded store at ``dsn`` (built its sink
    partition): in a cluster, the one process that may open it."""
    return normalize_dsn(dsn) in _OWNED

log = logging.getLogger("lucidstream.sink")

OnWrite = Callable[[str, int, float], None]
OnHealth = Callable[[StoreStatus], None]  # told of every failed insert and of recovery
# told, after a batch is stored, the trace items its Rows carried and when (monotonic
# ns) their table's insert started and ended
OnStored = Callable[[list, int, int], None]


class Writable(Protocol):
    """What a sink partition needs of a store (a :class:`~sinks.store.Store`)."""

    def insert(self, rows: Rows, dedup: bool = True) -> None: ...

    def close(self) -> None: ...


def merge_rows(items: list[Rows]) -> list[Rows]:
    """Concatenate items per table, keeping first-seen table order.

    >>> a, b = Rows("t", ("x",), [(1,)]), Rows("t", ("x",), [(2,)])
    >>> [(r.table, r.rows) for r in merge_rows([a, b])]
    [('t', [(1,), (2,)])]
    """
    merged: dict[str, Rows] = {}
    for item in items:
        if not item.rows:
            continue
        into = merged.get(item.table)
        if into is None:
            merged[item.table] = Rows(item.table, item.columns, list(item.rows))
        else:
            into.rows.extend(item.rows)
    return list(merged.values())


class _Partition(StatelessSinkPartition[Rows]):
    def __init__(self, store: Writable, breaker: CircuitBreaker, on_write: OnWrite | None,
                 on_stored: OnStored | None = None,
                 last_rows: Callable[[], list[Rows]] | None = None) -> None:
        self._store = store
        self._breaker = breaker
        self._on_write = on_write
        self._on_stored = on_stored
        self._last_rows = last_rows

    def write_batch(self, items: list[Rows]) -> None:
        self._write(items)

    def flush(self) -> None:
        """Every write handed over so far is stored (a synchronous partition always:
        a failure was raised by the write)."""

    def _write(self, items: list[Rows]) -> None:
        traced: dict[str, list] = {item.table: [] for item in items if item.trace}
        for item in items:
            if item.trace:
                traced[item.table].extend(item.trace)
        for rows in merge_rows(items):
            started = time.perf_counter()
            start_ns = time.monotonic_ns()
            self._insert(rows)
            elapsed = time.perf_counter() - started
            if self._on_stored is not None and rows.table in traced:
                self._on_stored(traced[rows.table], start_ns, time.monotonic_ns())
            if self._on_write is not None:
                self._on_write(rows.table, rows.count, elapsed)
            log.debug("step=sink table=%s rows=%d elapsed_ms=%.1f", rows.table, rows.count,
                      elapsed * 1000)

    def _insert(self, rows: Rows) -> None:
        self._breaker.call(lambda: self._store.insert(rows))

    def close(self) -> None:
        try:
            self._write_last()
        finally:
            self._store.close()

    def _write_last(self) -> None:
        """Store what the writes themselves gave rise to after the last batch (a stall
        or an outage that ended then): once, without retries, since the run is ending
        and the store may be down; what cannot be stored is logged."""
        if self._last_rows is None:
            return
        try:
            for rows in self._last_rows():
                self._store.insert(rows)
        except Exception as exc:  # the run ends either way: say what was not stored
            log.warning("step=sink could not store the run's last rows (%s); the store's "
                        "own failures at the end of the run are in the log only", exc)


class _BackgroundPartition(_Partition):
    """Writes on a :class:`~sinks.writer.BackgroundWriter`; the dataflow's thread
    goes on deciding while the embedded store inserts."""

    def __init__(self, store: Writable, breaker: CircuitBreaker, on_write: OnWrite | None,
                 on_stored: OnStored | None, depth: int, linger_s: float,
                 linger_rows: int, engine: EngineThreads | None = None,
                 last_rows: Callable[[], list[Rows]] | None = None,
                 live: bool = False) -> None:
        super().__init__(store, breaker, on_write, on_stored, last_rows)
        self._engine = engine
        if engine is not None:
            engine.lower()  # the pools the engine started with
        # A live stream arrives in many small batches: those that come within
        # ``linger_s``, up to ``linger_rows`` rows, go into one insert, since an insert
        # costs the engine mostly per call and each one is a part its merges rewrite.
        # The row bound keeps a fast flow (whose writer waits for it, and so lingers
        # too) from holding half a second of rows. A flush (a snapshot, the end) does
        # not wait for the linger. What waits while the writer is busy is bounded, and
        # with it the store owner's memory (RESULTS.md, "Settings measured") and what is
        # decided after the store fails: ``depth`` batches; ``live``, as many small ones
        # as make one insert (``linger_rows``) within one linger, so a live stream's
        # batches of a few hundred rows do not hold the flow, two at a time, for every
        # insert. A replay keeps to ``depth``: there, running ahead of a failed store
        # moves the pipeline clock on by the rows decided, seconds of it per thousand.
        self._writer: BackgroundWriter[list[Rows]] = BackgroundWriter(
            self._write, depth=depth, name="lucidstream-store-writer", linger=linger_s,
            merge=lambda batches: [rows for batch in batches for rows in batch],
            weigh=lambda batch: sum(rows.count for rows in batch), linger_weight=linger_rows,
            waiting_weight=linger_rows if live else 0, waiting_s=linger_s)

    def write_batch(self, items: list[Rows]) -> None:
        self._writer.submit(items)

    def _write(self, items: list[Rows]) -> None:
        super()._write(items)
        if self._engine is not None:
            self._engine.lower()  # threads its pools started for this write

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        try:
            self._writer.close()
        finally:
            super().close()


class _StoreSinkSettings:
    """What both sinks are configured with: the store, its retries and the callbacks.

    ``give_up_after_s`` ends the run after the store has failed for that long
    (unset: wait for it); ``stop`` set (Ctrl-C) ends the wait; ``wrap`` wraps the
    opened store (a fault injected on purpose: :mod:`sinks.storefault`);
    ``buffer_batches`` is how many batches may wait for a background writer, and
    ``linger_s`` how long that writer gathers rows into one insert (at most
    ``linger_rows`` of them); ``engine_nice`` is how much lower the embedded
    engine's threads run than the flow's (:mod:`sinks.enginethreads`; 0: the same);
    ``last_rows`` gives, as the sink closes after its last write, rows that those
    writes gave rise to (an alarm for a store stall that ended after the last batch);
    ``live`` lets a live stream's small batches wait for a busy writer up to one
    insert's rows (see :class:`_BackgroundPartition`).
    """

    def __init__(self, dsn: str, on_write: OnWrite | None = None,
                 on_health: OnHealth | None = None, on_stored: OnStored | None = None,
                 give_up_after_s: float | None = None, stop: threading.Event | None = None,
                 wrap: Callable[[Store], Writable] | None = None,
                 buffer_batches: int = 2, linger_s: float = 0.5,
                 linger_rows: int = 10_000, engine_nice: int = 10,
                 last_rows: Callable[[], list[Rows]] | None = None,
                 live: bool = False) -> None:
        if buffer_batches < 1:
            raise ConfigError(f"store buffer of {buffer_batches} batches: use at least 1")
        self.dsn = dsn
        self.buffer_batches = buffer_batches
        if not 0 <= linger_s <= 60:
            raise ConfigError(f"store linger of {linger_s} s: use 0 (insert at once) to 60 s")
        if linger_rows < 1:
            raise ConfigError(f"store linger of {linger_rows} rows: use at least 1")
        self.linger_s, self.linger_rows = linger_s, linger_rows
        self.engine_nice = checked_nice(engine_nice)
        self.last_rows = last_rows
        self.live = live
        self.on_write = on_write
        self.on_health = on_health
        self.on_stored = on_stored
        self.give_up_after_s = give_up_after_s
        self.stop = stop
        self.wrap = wrap
        CircuitBreaker(give_up_after_s=give_up_after_s)  # a bad setting fails here

    def _parts(self) -> tuple[Writable, CircuitBreaker]:
        opened = open_store(self.dsn)
        store = opened if self.wrap is None else self.wrap(opened)
        return store, CircuitBreaker(give_up_after_s=self.give_up_after_s,
                                     on_status=self.on_health, stop=self.stop, what="insert")


class ClickHouseSink(_StoreSinkSettings, DynamicSink[Rows]):
    """Writes :class:`Rows` to the store at ``dsn``; one store handle per worker.

    Each batch of :class:`Rows` is one columnar insert per table, retried while the
    store is down with a deduplication token, so a retried block is written once::

        op.output("store", rows, ClickHouseSink("http://default:@127.0.0.1:8123/default"))
    """

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition:
        return _Partition(*self._parts(), self.on_write, self.on_stored, self.last_rows)


class _OwnerPartition(StatefulSinkPartition[Rows, None]):
    def __init__(self, inner: _Partition, durable_snapshots: bool) -> None:
        self._inner = inner
        self._durable = durable_snapshots

    def write_batch(self, values: list[Rows]) -> None:
        self._inner.write_batch(values)

    def snapshot(self) -> None:
        # A snapshot never covers rows not stored yet: it waits for every write, and
        # after a failed one it raises, so the epoch is not committed.
        if self._durable:
            self._inner.flush()
        return None

    def close(self) -> None:
        self._inner.close()


class EmbeddedStoreSink(_StoreSinkSettings, FixedPartitionedSink[Rows, None]):
    """Routes every row to the one worker that owns the embedded store.

    chdb admits one process per path. With one partition, Bytewax sends all
    rows, from every worker of every process, to that partition's worker, and
    only its process opens the store. Items are ``("store", rows)`` pairs.

    Inserts run on a background thread (chdb releases the GIL while it
    inserts), flushed before every snapshot when ``durable_snapshots`` (set it
    when the flow runs with recovery; without, only the end of the run waits).
    """

    def __init__(self, dsn: str, *args, durable_snapshots: bool = True,  # type: ignore[no-untyped-def]
                 **kwargs) -> None:
        super().__init__(dsn, *args, **kwargs)
        self.durable_snapshots = durable_snapshots

    def list_parts(self) -> list[str]:
        return ["store"]

    def part_fn(self, item_key: str) -> int:
        return 0

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _OwnerPartition:
        _OWNED.add(normalize_dsn(self.dsn))
        inner = _BackgroundPartition(*self._parts(), self.on_write, self.on_stored,
                                     self.buffer_batches, self.linger_s, self.linger_rows,
                                     EngineThreads(self.engine_nice), self.last_rows,
                                     self.live)
        return _OwnerPartition(inner, self.durable_snapshots)
