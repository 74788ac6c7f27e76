"""The batched, idempotent ClickHouse sink for Bytewax.

Each item is a :class:`~operators.records.Rows` (one table, many rows). Every
``write_batch`` call merges the items per table and writes each table with one
columnar insert, so the number of inserts follows the number of batches, not
events.

Delivery: at-least-once underneath. A write that fails is retried with
backoff; if the store stays down the dataflow stops with a
:class:`~operators.errors.StoreUnavailable` and, with Bytewax recovery, resumes
from its last snapshot and writes again. The *effect* is exactly-once because
every row carries a deterministic ID in a ReplacingMergeTree (read with FINAL);
a retried block carries the same deduplication token, so a retry that did land
is not stored twice even before ClickHouse merges.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from bytewax.outputs import (
    DynamicSink,
    FixedPartitionedSink,
    StatefulSinkPartition,
    StatelessSinkPartition,
)

from operators.errors import StoreUnavailable
from operators.records import Rows
from sinks.store import Store, open_store
from sinks.writer import BackgroundWriter

__all__ = ["ClickHouseSink", "EmbeddedStoreSink", "merge_rows"]

log = logging.getLogger("lucidstream.sink")

OnWrite = Callable[[str, int, float], None]
OnHealth = Callable[[bool], None]  # told after each insert whether it succeeded
# told, after a batch is stored, the trace items its Rows carried and when (monotonic
# ns) their table's insert started and ended
OnStored = Callable[[list, int, int], None]


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
    def __init__(self, store: Store, retries: int, on_write: OnWrite | None,
                 on_health: OnHealth | None = None, on_stored: OnStored | None = None
                 ) -> None:
        self._store = store
        self._retries = retries
        self._on_write = on_write
        self._on_health = on_health
        self._on_stored = on_stored

    def write_batch(self, items: list[Rows]) -> None:
        self._write(items)

    def wait(self) -> None:
        """Every write handed over so far is stored or failed (a synchronous partition
        always); a failure is raised by the next write or the close."""

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
        delay = 0.5
        for attempt in range(self._retries + 1):
            try:
                self._store.insert(rows)
                if self._on_health is not None:
                    self._on_health(True)
                return
            except StoreUnavailable as exc:
                if self._on_health is not None:
                    self._on_health(False)  # the mode machine hears of it while we retry
                if attempt == self._retries:
                    raise
                log.warning("step=sink table=%s rows=%d attempt=%d error=%s retry_in_s=%.1f",
                            rows.table, rows.count, attempt + 1, exc, delay)
                time.sleep(delay)
                delay *= 2

    def close(self) -> None:
        self._store.close()


class _BackgroundPartition(_Partition):
    """Writes on a :class:`~sinks.writer.BackgroundWriter`; the dataflow's thread
    goes on deciding while the embedded store inserts."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        # A live stream arrives in many small batches: those that come within 50 ms
        # go into one insert, since an insert costs mostly per call. Two batches bound
        # what waits, and so the store owner's memory (RESULTS.md, "Settings measured").
        self._writer: BackgroundWriter[list[Rows]] = BackgroundWriter(
            self._write, depth=2, name="lucidstream-store-writer", linger=0.05,
            merge=lambda batches: [rows for batch in batches for rows in batch])

    def write_batch(self, items: list[Rows]) -> None:
        self._writer.submit(items)

    def wait(self) -> None:
        self._writer.wait()

    def close(self) -> None:
        try:
            self._writer.close()
        finally:
            super().close()


class _StoreSinkSettings:
    """What both sinks are configured with: the store, retries and the callbacks."""

    def __init__(self, dsn: str, retries: int = 3, on_write: OnWrite | None = None,
                 on_health: OnHealth | None = None, on_stored: OnStored | None = None
                 ) -> None:
        self.dsn = dsn
        self.retries = retries
        self.on_write = on_write
        self.on_health = on_health
        self.on_stored = on_stored

    def _partition(self, kind: type[_Partition] = _Partition) -> _Partition:
        return kind(open_store(self.dsn), self.retries, self.on_write, self.on_health,
                    self.on_stored)


class ClickHouseSink(_StoreSinkSettings, DynamicSink[Rows]):
    """Writes :class:`Rows` to the store at ``dsn``; one store handle per worker.

    Each batch of :class:`Rows` is one columnar insert per table, retried ``retries``
    times with a deduplication token, so a retried block is written once::

        op.output("store", rows, ClickHouseSink("http://default:@127.0.0.1:8123/default"))
    """

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition:
        return self._partition()


class _OwnerPartition(StatefulSinkPartition[Rows, None]):
    def __init__(self, inner: _Partition, durable_snapshots: bool) -> None:
        self._inner = inner
        self._durable = durable_snapshots

    def write_batch(self, values: list[Rows]) -> None:
        self._inner.write_batch(values)

    def snapshot(self) -> None:
        # A snapshot never covers rows not stored yet. An error is raised by the next
        # write or the close: Bytewax reports those with their cause, a snapshot's not.
        if self._durable:
            self._inner.wait()
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
        return _OwnerPartition(self._partition(_BackgroundPartition), self.durable_snapshots)
