"""A store that fails: retries behind a circuit breaker, backpressure, nothing lost or doubled.

The store itself (chdb) stays real; the outage is injected by
:class:`sinks.storefault.StoreFault`, a wrapper around it, because an embedded
store cannot be made to refuse connections. ``errors`` fails inserts before they
reach the store, ``no_reply`` after they landed (the lost reply a network cut
gives), so the retry meets a block that is already stored.
"""

from __future__ import annotations

import random
import re
import signal
import threading

import pytest

from operators.errors import ConfigError, StoreError, StoreUnavailable
from sinks.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker, StoreStatus
from sinks.storefault import StoreFault
from tests.conftest import cli, query_scalar
from tests.watch import Watched

FAST = "FROM decisions FINAL WHERE path IN ('fast', 'fallback')"


class FakeTime:
    """A clock the breaker's waits advance, so an outage of minutes takes no time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def stop_event(self) -> threading.Event:
        clock = self

        class Advancing(threading.Event):
            def wait(self, timeout: float | None = None) -> bool:
                clock.waits.append(timeout or 0.0)
                clock.now += timeout or 0.0
                return False

        return Advancing()


def down_until(fake: FakeTime, until_s: float):
    """An insert that fails while the fake clock is before ``until_s``."""
    def insert() -> str:
        if fake.now < until_s:
            raise StoreUnavailable("connection refused")
        return "stored"
    return insert


def test_a_five_minute_outage_is_waited_out_with_capped_jittered_backoff():
    fake, statuses = FakeTime(), []
    breaker = CircuitBreaker(base_s=0.5, cap_s=15.0, threshold=3, on_status=statuses.append,
                             stop=fake.stop_event(), clock=fake.clock, rng=random.Random(3))
    assert breaker.call(down_until(fake, 300.0)) == "stored"
    assert fake.now >= 300.0 and breaker.state == CLOSED
    bounds = breaker.bounds(len(fake.waits))
    assert all(b / 2 <= w <= b for w, b in zip(fake.waits, bounds, strict=True))
    assert max(fake.waits) <= 15.0
    # capped, not hammered: a 5-minute outage is some 20-40 probes, not thousands
    assert 15 <= len(fake.waits) <= 45
    outcomes = [s for s in statuses if s.writing_since is None]  # not "a write started"
    assert [s.ok for s in outcomes].count(True) == 1 and outcomes[-1].ok
    failures = [s for s in outcomes if not s.ok]
    assert failures[0].state == CLOSED and failures[-1].state in (OPEN, HALF_OPEN)
    assert failures[-1].attempts == len(fake.waits)
    assert all(s.failing_since == 0.0 for s in failures)


def test_the_circuit_opens_after_the_threshold_and_closes_on_the_first_success():
    fake = FakeTime()
    states = []
    breaker = CircuitBreaker(base_s=1.0, cap_s=4.0, threshold=2, stop=fake.stop_event(),
                             clock=fake.clock, on_status=lambda s: states.append(s.state)
                             if s.writing_since is None else None)
    assert breaker.call(down_until(fake, 6.0)) == "stored"
    assert states[:2] == [CLOSED, OPEN]  # as each failure is reported
    assert states[-1] == CLOSED


def test_giving_up_says_how_long_and_what_a_restart_does():
    fake = FakeTime()
    breaker = CircuitBreaker(give_up_after_s=60, stop=fake.stop_event(), clock=fake.clock)
    # it gives up at the first failed probe past 60 s: probes are jittered and at most
    # 15 s apart, so between 60 and 75 s
    with pytest.raises(StoreUnavailable,
                       match=r"for (6\d|7[0-5]) s .*giving up.*--recovery-dir"):
        breaker.call(down_until(fake, 1e9))
    with pytest.raises(ConfigError, match="positive number of seconds"):
        CircuitBreaker(give_up_after_s=0)


def test_a_stop_during_an_outage_ends_the_wait_at_once():
    stop = threading.Event()
    stop.set()
    breaker = CircuitBreaker(base_s=30, cap_s=30, stop=stop)
    with pytest.raises(StoreUnavailable, match="stopped while the store was down"):
        breaker.call(lambda: (_ for _ in ()).throw(StoreUnavailable("refused")))


def test_a_rejected_insert_is_not_retried():
    calls = []

    def rejected() -> None:
        calls.append(1)
        raise StoreError("store rejected insert into decisions: type mismatch")

    with pytest.raises(StoreError, match="type mismatch"):
        CircuitBreaker().call(rejected)
    assert calls == [1]


def test_store_fault_settings_are_checked():
    assert StoreFault.parse("errors:30@5") == StoreFault("errors", 30.0, 5.0)
    for bad in ("errors", "melt:30", "errors:-1", "errors:x@y"):
        with pytest.raises(ConfigError, match="store fault"):
            StoreFault.parse(bad)
    status = StoreStatus(ok=False, attempts=2)
    assert not status.ok and status.state == CLOSED


def outage_run(tmp_path, fault: str, events: int, *extra: str) -> tuple[Watched, str]:
    path = tmp_path / "events.jsonl"
    assert cli("simulate", "--out", str(path), "--events", str(events)).returncode == 0
    dsn = f"chdb://{tmp_path}/store"
    run = Watched("run", "--source", str(path), "--store", dsn, "--batch", "1000", *extra,
                  env={"LUCIDSTREAM_STORE_FAULT": fault})
    return run, dsn


def held_counts(run: Watched) -> list[int]:
    """The event counts the progress line showed while the store was down."""
    return [int(m.group(1).replace(",", "")) for _, line in run.lines
            if "STORE DOWN" in line and (m := re.match(r"events ([\d,]+)", line))]


def test_an_outage_holds_the_input_then_stores_every_decision_once(tmp_path):
    """Fails without the breaker in sinks/clickhouse.py (three retries, then the run
    stopped) and without the writer's bounded queue (the input would not be held)."""
    run, dsn = outage_run(tmp_path, "errors:4@decisions=5000", 40_000)
    assert run.finish() == 0, "\n".join(line for _, line in run.lines[-20:])
    held = held_counts(run)
    assert len(held) >= 10, "the progress line never showed the outage"
    # what was in flight when the store failed is decided (the writer's buffer), then
    # no more is read: the last readings of the outage agree
    assert len(set(held[-8:])) == 1 and held[-1] < 40_000, held
    assert held[-1] - held[0] <= 10_000, f"more read than the buffers hold: {held}"
    assert any("circuit_open" in line for _, line in run.lines)
    assert int(query_scalar(dsn, f"SELECT count() {FAST}")) == 40_000
    assert int(query_scalar(dsn, f"SELECT uniqExact(decision_id) {FAST}")) == 40_000
    outage = query_scalar(dsn, "SELECT count(), min(value) FROM drift_events FINAL "
                               "WHERE signal = 'store_outage'").split(",")
    assert outage[0] == "1" and 3.5 <= float(outage[1]) <= 15


def test_lost_replies_are_retried_and_each_block_stored_once(tmp_path):
    """Fails without the deduplication token on each insert (Store.insert)."""
    run, dsn = outage_run(tmp_path, "no_reply:2@decisions=2000", 20_000)
    assert run.finish() == 0, "\n".join(line for _, line in run.lines[-20:])
    assert any("reply was lost" in line for _, line in run.lines)
    # the retried blocks carry their first attempt's token: no copy even before a merge
    raw = query_scalar(dsn, "SELECT count(), uniqExact(decision_id) FROM decisions "
                            "WHERE path IN ('fast', 'fallback')")
    assert raw == "20000,20000"


def test_stopped_or_killed_during_an_outage_a_restart_loses_and_doubles_nothing(tmp_path):
    """Fails when a snapshot returns after a failed write (_OwnerPartition.snapshot
    waiting without raising, as it once did): the Ctrl-C run then committed an epoch
    past unstored rows, and the restart lost 3,000 decisions."""
    recovery = str(tmp_path / "recovery")
    run, dsn = outage_run(tmp_path, "errors:600@decisions=5000", 40_000, "--recovery-dir", recovery,
                          "--epoch", "0.5")
    run.wait_for(lambda: len(held_counts(run)) >= 3)
    run.proc.send_signal(signal.SIGINT)  # Ctrl-C: the wait ends, the run says why
    assert run.finish(timeout=30) != 0
    said = "\n".join(line for _, line in run.lines)
    assert "stopped while the store was down" in said and "--recovery-dir" in said

    again = Watched(*run.args, env={"LUCIDSTREAM_STORE_FAULT": "errors:600@decisions=1000"})
    again.wait_for(lambda: len(held_counts(again)) >= 3)
    again.proc.send_signal(signal.SIGKILL)
    assert again.finish() == -signal.SIGKILL

    final = cli(*run.args)
    assert final.returncode == 0, final.stderr
    assert int(query_scalar(dsn, f"SELECT count() {FAST}")) == 40_000
    assert int(query_scalar(dsn, f"SELECT uniqExact(decision_id) {FAST}")) == 40_000


def test_a_hung_store_shows_and_is_recorded_when_it_answers(tmp_path):
    """Once 2,000 decisions are stored, inserts hang for 7 s, then the store answers (a
    hang shorter than the client's timeout): no failure, but the progress line and a
    store_stall alarm say the input was held. The hang starts on a decision count, not a
    time: a run on a fast moment could end before a timed hang began."""
    run, dsn = outage_run(tmp_path, "hang:7@decisions=2000", 20_000)
    assert run.finish() == 0, "\n".join(line for _, line in run.lines[-20:])
    assert any("STORE SLOW" in line for _, line in run.lines)
    assert any("slow_write" in line for _, line in run.lines)
    stall = query_scalar(dsn, "SELECT count(), max(value) FROM drift_events FINAL "
                              "WHERE signal = 'store_stall'").split(",")
    assert int(stall[0]) >= 1 and 4 <= float(stall[1]) <= 15
    assert int(query_scalar(dsn, f"SELECT count() {FAST}")) == 20_000
