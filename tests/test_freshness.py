from __future__ import annotations

from operators.freshness import FreshnessConfig, FreshnessTracker


def signals(tracker: FreshnessTracker) -> list[str]:
    return [a.signal for a in tracker.drain_alarms()]


def feed(tracker, source, start, count, step=100, delay=20, seq0=0):
    for i in range(count):
        t = start + i * step
        tracker.observe(source, t, t + delay, seq=seq0 + i)
        tracker.check(t + delay)


def test_gap_is_one_alarm_with_missing_count_and_reorder_is_not_an_alarm():
    t = FreshnessTracker()
    for seq in (1, 2, 6, 4, 7):
        t.observe("s", 1_000 + seq, 1_000 + seq, seq=seq)
    alarms = t.drain_alarms()
    assert [(a.signal, a.value, a.source_id) for a in alarms] == [("seq_gap", 3.0, "s")]
    assert t.reordered == 1 and t.gaps == 1


def test_sequence_reset_is_reported_not_treated_as_reordering():
    t = FreshnessTracker()
    t.observe("s", 1, 1, seq=50_000)
    t.observe("s", 2, 2, seq=0)
    assert signals(t) == ["seq_reset"]


def test_clock_skew_alarms_once_per_run_of_skewed_events():
    t = FreshnessTracker(FreshnessConfig(skew_tolerance_ms=500))
    for i in range(5):
        t.observe("s", 10_000 + i, 1_000 + i)      # 9 s in the future
    t.observe("s", 1_100, 1_100)                   # back to normal
    t.observe("s", 20_000, 1_200)                  # skewed again: a new occurrence
    assert signals(t) == ["clock_skew", "clock_skew"]
    assert t.skewed_events == 6


def test_skewed_events_do_not_advance_the_watermark():
    t = FreshnessTracker()
    t.observe("s", 1_000, 1_000)
    t.observe("s", 99_000, 1_100)
    t.check(1_100, force=True)
    assert t.sources["s"].event_ms == 1_000


def test_silent_source_holds_the_watermark_back_while_silent_and_alarms_once():
    t = FreshnessTracker()
    feed(t, "a", 0, 50)
    feed(t, "b", 0, 50)
    assert t.lag_ms(5_000) < 100
    # "b" goes quiet; "a" keeps speaking for 10 more seconds
    for i in range(50, 150):
        now = i * 100 + 20
        t.observe("a", i * 100, now, seq=i)
        t.check(now)
    lag = t.lag_ms(150 * 100)
    assert lag >= 10_000 - 200, lag  # the lag grew while b was silent, not only later
    assert signals(t) == ["silence"]
    assert t.silent_sources == 1
    t.observe("b", 15_000, 15_020, seq=50)
    assert signals(t) == ["silence_end"]


def test_backlog_shows_as_lag_at_once():
    t = FreshnessTracker()
    t.observe("s", 1_000, 11_000)
    t.check(11_000, force=True)
    assert t.lag_ms(11_000) == 10_000


def test_heartbeats_keep_a_quiet_source_current_and_idle_sources_do_not_hold_back():
    t = FreshnessTracker()
    t.observe("hb", 0, 10, kind="heartbeat")
    t.observe("idle", 0, 10, kind="idle")
    for i in range(1, 100):
        t.observe("hb", i * 1000, i * 1000 + 10, kind="heartbeat")
        t.check(i * 1000 + 10)
    assert t.lag_ms(99_010) <= 10
    assert "silence" not in signals(t)


def test_long_silence_retires_the_source_and_state_stays_bounded():
    t = FreshnessTracker(FreshnessConfig(retire_after_ms=60_000))
    for n in range(10_000):
        t.observe(f"s{n}", 0, 0)
    t.check(30_000, force=True)
    assert t.silent_sources == 10_000
    t.check(120_000, force=True)
    assert len(t.sources) == 0
    retired = [a for a in t.drain_alarms() if a.signal == "retired"]
    assert len(retired) == 10_000
    assert t.lag_ms(121_000) == 0


def test_alarm_ids_are_deterministic():
    def run() -> list[str]:
        t = FreshnessTracker()
        for seq in (1, 5, 9):
            t.observe("s", seq, seq, seq=seq)
        return [a.alarm_id for a in t.drain_alarms()]
    assert run() == run() and len(set(run())) == 2
