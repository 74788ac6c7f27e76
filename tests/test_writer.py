"""The background writer and the embedded-store sink that uses it."""

from __future__ import annotations

import threading
import time

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main

from operators.errors import StoreError
from operators.records import DEAD_LETTER_COLUMNS, Rows
from sinks.clickhouse import EmbeddedStoreSink
from sinks.writer import BackgroundWriter


def _joined(chunks: list[list[int]]) -> list[int]:
    """A merge for writers of lists: the lists of one write, joined in order."""
    return [i for chunk in chunks for i in chunk]


def _held(submit, item, why: str) -> threading.Thread:
    """Submit ``item`` on another thread, which must still be waiting for room after
    0.3 s (the caller is held); the thread, to join once room is made."""
    blocked = threading.Thread(target=submit, args=(item,))
    blocked.start()
    blocked.join(timeout=0.3)
    assert blocked.is_alive(), why
    return blocked


def test_writes_run_in_order_on_another_thread():
    seen: list[tuple[int, str]] = []
    writer = BackgroundWriter(lambda i: seen.append((i, threading.current_thread().name)))
    for i in range(100):
        writer.submit(i)
    writer.flush()
    assert [i for i, _ in seen] == list(range(100))
    assert {name for _, name in seen} == {"lucidstream-writer"}
    writer.close()


def test_a_full_queue_holds_the_caller_back():
    release = threading.Event()
    writer = BackgroundWriter(lambda _: release.wait(), depth=1)
    writer.submit(1)  # taken by the thread, which now waits
    writer.submit(2)  # fills the queue
    blocked = _held(writer.submit, 3, "a third write must wait for room")
    release.set()
    blocked.join(timeout=5)
    writer.close()


def test_small_items_gather_up_to_the_waiting_weight_while_a_write_runs():
    """A live stream's batches are small: while an insert runs, as many may wait as
    weigh one insert, instead of holding the flow after ``depth`` of them (it was held
    for every insert, two batches at a time). Large items are still held at
    ``depth``. Fails with a queue bounded by the count of items alone."""
    entered, release = threading.Event(), threading.Event()
    written: list[list[int]] = []

    def write(item: list[int]) -> None:
        entered.set()
        release.wait()
        written.append(item)

    writer = BackgroundWriter(write, depth=2, weigh=len, waiting_weight=10)
    writer.submit([0])
    assert entered.wait(timeout=5)  # the first write runs, and waits
    small = threading.Thread(target=lambda: [writer.submit([i, i]) for i in range(1, 6)])
    small.start()
    small.join(timeout=2)
    assert not small.is_alive(), "five small items (weight 10) must not wait for room"
    blocked = _held(writer.submit, [6], "past the waiting weight, the caller is held")
    release.set()
    blocked.join(timeout=5)
    writer.flush()
    assert [item[0] for item in written] == [0, 1, 2, 3, 4, 5, 6]
    writer.close()

    entered.clear()
    release.clear()
    large = BackgroundWriter(write, depth=2, weigh=len, waiting_weight=10)
    large.submit([0] * 20)
    assert entered.wait(timeout=5)
    large.submit([1] * 20)
    large.submit([2] * 20)  # two wait: depth
    held = _held(large.submit, [3] * 20, "large items are held at depth")
    release.set()
    held.join(timeout=5)
    large.close()


def test_small_items_wait_no_longer_than_the_waiting_time():
    """A slow live stream's small items never weigh an insert's worth: while a failed
    or hung store keeps the writer busy, the caller is held once the oldest waiting
    item has waited ``waiting_s`` (a flow is not decided far ahead of its store)."""
    entered, release = threading.Event(), threading.Event()
    writer = BackgroundWriter(lambda _: (entered.set(), release.wait()), depth=2,
                              weigh=len, waiting_weight=1_000, waiting_s=0.3)
    writer.submit([0])
    assert entered.wait(timeout=5)
    for i in range(1, 6):
        writer.submit([i])  # light, and young: admitted
    time.sleep(0.35)
    held = _held(writer.submit, [6], "the oldest waiting item is past waiting_s: the caller waits")
    release.set()
    held.join(timeout=5)
    writer.close()


def test_a_failed_write_is_raised_to_the_caller_and_nothing_after_it_is_written():
    written: list[int] = []

    def write(i: int) -> None:
        if i == 3:
            raise StoreError("insert into t failed")
        written.append(i)

    writer = BackgroundWriter(write, depth=10)
    for i in range(6):
        writer.submit(i)
    with pytest.raises(StoreError, match="insert into t failed"):
        writer.flush()
    assert written == [0, 1, 2]
    writer.close()


def test_after_a_raised_failure_nothing_is_written_and_close_does_not_raise_it_again():
    """Fails when raising the error forgets it (as it once did): the next submit was
    written, and on Ctrl-C during an outage the sink, closed while Bytewax unwound
    from the error, raised a second one; Bytewax aborted in its destructor and the
    embedded store's fatal-signal handler left the process hung."""
    written: list[int] = []

    def write(i: int) -> None:
        if i == 0:
            raise StoreError("insert into t failed")
        written.append(i)

    writer = BackgroundWriter(write, depth=10)
    writer.submit(0)
    writer.wait()
    with pytest.raises(StoreError, match="insert into t failed"):
        writer.submit(1)
    with pytest.raises(RuntimeError, match=r"an earlier write failed .*insert into t failed"):
        writer.submit(2)
    with pytest.raises(RuntimeError, match="an earlier write failed"):
        writer.flush()
    writer.close()  # the dataflow already has the error: closing does not raise it again
    assert written == []


def test_items_within_the_linger_go_in_one_merged_write_in_order():
    writes: list[list[int]] = []
    writer = BackgroundWriter(writes.append, depth=50, linger=0.2,
                              merge=_joined)
    for i in range(20):
        writer.submit([i])
    writer.flush()  # waits for the merged write, then raises nothing
    assert _joined(writes) == list(range(20))
    assert len(writes) <= 2, f"20 quick submits made {len(writes)} writes"
    writer.submit([99])
    writer.close()  # the last one is written before the thread stops
    assert writes[-1] == [99]


def test_a_flush_writes_at_once_instead_of_waiting_out_the_linger():
    """A snapshot flushes the store's writer: with a linger of 30 s it must not stall
    the flow for 30 s. Fails when the linger loop does not end at a flush."""
    import time

    writes: list[list[int]] = []
    writer = BackgroundWriter(writes.append, depth=5, linger=30.0,
                              merge=_joined)
    time.sleep(0.01)  # the writer waits for its first item, which starts a linger
    started = time.monotonic()
    for i in range(3):
        writer.submit([i])
    writer.flush()
    assert time.monotonic() - started < 10, "the flush waited for the linger"
    assert writes == [[0, 1, 2]]
    writer.close()
    assert writes == [[0, 1, 2]]  # nothing written twice, nothing empty


def test_a_writer_kept_busy_by_a_live_stream_still_gathers_its_items():
    """A live stream's small batches, a few milliseconds apart, each found the writer
    busy with the previous insert; a busy writer did not linger, and every insert
    was one or two batches (170 inserts for 200,000 decisions at 20,000 events/s,
    each costing the engine milliseconds). Fails without the linger on a busy writer."""
    import time

    writes: list[list[int]] = []

    def slow_write(items: list[int]) -> None:
        writes.append(items)
        time.sleep(0.05)  # an insert takes a while: the next batches queue meanwhile

    writer = BackgroundWriter(slow_write, depth=2, linger=0.3, merge=_joined)
    started = time.monotonic()
    for i in range(100):  # a batch every 10 ms for a second
        writer.submit([i])
        time.sleep(max(0.0, started + (i + 1) * 0.01 - time.monotonic()))
    writer.close()
    assert _joined(writes) == list(range(100))
    assert len(writes) <= 6, f"a second of batches took {len(writes)} writes"


def test_a_linger_ends_once_the_items_weigh_enough():
    """A fast flow keeps the writer waiting for it, so the writer lingers on every
    write: the weight bound keeps it from holding the linger's worth of rows."""
    import time

    writes: list[list[int]] = []
    done = threading.Event()

    def write(items: list[int]) -> None:
        writes.append(items)
        done.set()

    writer = BackgroundWriter(write, depth=5, linger=30.0, weigh=len, linger_weight=4,
                              merge=_joined)
    time.sleep(0.01)  # the writer waits for its first item, which starts a linger
    for chunk in ([0, 1], [2], [3, 4], [5]):
        writer.submit(chunk)
    assert done.wait(10), "the writer lingered past its weight bound"
    assert writes[0] == [0, 1, 2, 3, 4]  # 2 + 1 + 2 rows reached the bound of 4
    writer.close()
    assert writes == [[0, 1, 2, 3, 4], [5]]


def _flow(dsn: str, batches: list[Rows]) -> Dataflow:
    flow = Dataflow("writer_test")
    keyed = op.map("key", op.input("in", flow, TestingSource(batches)), lambda r: ("store", r))
    op.output("out", keyed, EmbeddedStoreSink(dsn))
    return flow


def test_the_embedded_sink_stores_every_row_before_the_flow_ends(store):
    batches = [Rows("dead_letters", DEAD_LETTER_COLUMNS,
                    [(f"id-{b}-{i}", 1_000, f"file:x:{i}", "bad", "{}", "t")
                     for i in range(100)]) for b in range(30)]
    run_main(_flow(store.dsn, batches))
    assert store.scalar("SELECT count() FROM dead_letters") == 3_000


def test_the_embedded_sink_stops_the_flow_when_an_insert_fails(store):
    bad = [Rows("no_such_table", ("x",), [(1,)])]
    with pytest.raises(Exception) as raised:
        run_main(_flow(store.dsn, bad))
    # Bytewax wraps it; the CLI reports the store's error found in the chain (runner.py)
    chain, error = [], raised.value
    while error is not None:
        chain.append(error)
        error = error.__cause__ or error.__context__
    store_errors = [e for e in chain if isinstance(e, StoreError)]
    assert store_errors and "no_such_table" in str(store_errors[0])
