from __future__ import annotations

import numpy as np
import pytest

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
    assert t.drain_alarms() == []  # held: 3, 4 and 5 may still come
    t.check(1_500)
    assert t.drain_alarms() == []
    t.check(2_006)  # 1 s after the jump, 3 and 5 never came (4 did)
    alarms = t.drain_alarms()
    assert [(a.signal, a.value, a.source_id) for a in alarms] == [("seq_gap", 2.0, "s")]
    assert alarms[0].detected_at == 2_006 and alarms[0].details == {"after_seq": 2, "seq": 6}
    assert t.reordered == 1 and t.gaps == 1


def test_reordered_delivery_is_not_loss_and_each_real_gap_is_reported_once():
    # Arrival order of a source at 100 Hz whose messages take 3-40 ms: late, not lost.
    t = FreshnessTracker()
    order = [0, 1, 3, 2, 4, 7, 5, 6, 8, 9, 12, 10, 11, *range(13, 40)]
    for i, seq in enumerate(order):
        t.observe("s", 1_000 + 10 * seq, 1_000 + 10 * i + 5, seq=seq)
        t.check(1_000 + 10 * i + 5)
    t.check(1_500)
    assert t.drain_alarms() == [] and t.reordered == 5  # 2, 5, 6, 10 and 11 came late
    # 41 and 42 are lost; 44 comes late: one alarm for the two missing, at its due time.
    for i, seq in enumerate([40, 43, 45, 44, 46]):
        t.observe("s", 1_000 + 10 * seq, 1_500 + 10 * i, seq=seq)
    t.check(2_400)  # due at 2,510: 1 s after 43 arrived
    assert t.drain_alarms() == []
    t.check(2_700)
    alarms = t.drain_alarms()
    assert [(a.signal, a.value, a.detected_at) for a in alarms] == [("seq_gap", 2.0, 2_700)]
    t.check(3_000)
    assert t.drain_alarms() == []


def test_a_jump_beyond_the_held_limit_is_reported_at_once_and_end_of_input_reports_held():
    t = FreshnessTracker(FreshnessConfig(max_held=100))
    t.observe("s", 1, 1, seq=1)
    t.observe("s", 2, 2, seq=500)     # 498 missing: not reordering
    assert [(a.signal, a.value) for a in t.drain_alarms()] == [("seq_gap", 498.0)]
    t.observe("s", 3, 3, seq=503)     # 501 and 502 held ...
    t.flush_gaps()                    # ... and reported when the input ends
    assert [(a.signal, a.value) for a in t.drain_alarms()] == [("seq_gap", 2.0)]


def test_without_a_reorder_window_a_gap_is_reported_at_once():
    t = FreshnessTracker(FreshnessConfig(reorder_ms=0))
    for seq in (1, 4):
        t.observe("s", seq, seq, seq=seq)
    assert [(a.signal, a.value) for a in t.drain_alarms()] == [("seq_gap", 2.0)]


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
    # each source spoke once: its cadence is unknown, so silence waits max_silence_ms
    t = FreshnessTracker(FreshnessConfig(max_silence_ms=20_000, retire_after_ms=60_000))
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
        t.check(2_000)  # the two gaps fall due
        return [a.alarm_id for a in t.drain_alarms() if a.signal == "seq_gap"]
    assert run() == run() and len(set(run())) == 2


def test_a_held_gap_survives_a_recovery_snapshot():
    import pickle

    t = FreshnessTracker()
    t.observe("s", 1, 1, seq=1)
    t.observe("s", 2, 2, seq=5)                   # 2, 3 and 4 held
    restored = pickle.loads(pickle.dumps(t))      # as Bytewax recovery stores a shard
    restored.observe("s", 3, 3, seq=3)            # late, after the restart
    restored.check(2_000)
    gaps = [a for a in restored.drain_alarms() if a.signal == "seq_gap"]
    assert [(a.value, a.details) for a in gaps] == [(2.0, {"after_seq": 1, "seq": 5})]


def test_a_source_reporting_every_30_minutes_is_neither_silent_nor_retired_for_a_week():
    t = FreshnessTracker()
    half_hour = 30 * 60_000
    for i in range(7 * 48):
        now = i * half_hour + 50
        t.observe("slow", i * half_hour, now, seq=i)
        for check in range(1, 6):  # the checks a running flow makes between two reports
            t.check(now + check * half_hour // 6)
    assert signals(t) == []
    assert len(t.sources) == 1


def test_silence_follows_each_source_cadence_within_the_bounds():
    cfg = FreshnessConfig(min_silence_ms=3_000, max_silence_ms=600_000)
    for source, step, limit in (("fast", 100, 3_000),            # 10 Hz: the 3 s floor
                                ("minute", 60_000, 600_000),     # a minute: 10 minutes
                                ("hourly", 3_600_000, 600_000)):  # hourly: the 10 min cap
        t = FreshnessTracker(cfg)
        feed(t, source, 0, 5, step=step)
        assert t.silence_after_ms(t.sources[source]) == pytest.approx(limit)


def test_a_retired_source_keeps_its_cadence_when_it_comes_back():
    t = FreshnessTracker(FreshnessConfig(max_silence_ms=60_000, retire_after_ms=60_000))
    t.observe("s", 0, 0, seq=0)
    t.check(400_000, force=True)  # heard once: silent after 60 s, retired after 180 s
    assert signals(t) == ["silence", "retired"]
    t.observe("s", 500_000, 500_000, seq=1)
    assert t.silence_after_ms(t.sources["s"]) == 60_000  # 10 x 500 s, within the cap


def test_one_dark_source_of_24_does_not_move_the_fleet_lag_and_a_tenth_does():
    def lag_with(dark: int) -> int:
        t = FreshnessTracker()
        for i in range(300):  # 24 sources at 10 Hz; the dark ones stop at 10 s
            now = i * 100 + 20
            for s in range(24):
                if s >= dark or i < 100:
                    t.observe(f"r{s}", i * 100, now, seq=i)
            t.check(now)
        return t.lag_ms(300 * 100)
    assert lag_with(0) < 100
    assert lag_with(1) < 100 and lag_with(2) < 100  # 4 % and 8 % of the fleet
    assert lag_with(3) >= 19_000                    # 12.5 %: the fleet is behind


def test_a_seq_delivered_twice_is_a_duplicate_alarm_once_per_episode_not_reordering():
    t = FreshnessTracker(FreshnessConfig(duplicate_alarm_ms=60_000))
    # 4 comes late (reordering); 4, 6 and 3 come again (duplicates), within a minute
    for i, seq in enumerate([1, 2, 3, 5, 4, 4, 6, 6, 7, 3]):
        t.observe("s", 1_000 + 10 * i, 1_050 + 10 * i, seq=seq)
    alarms = t.drain_alarms()
    assert [(a.signal, a.value, a.source_id) for a in alarms] == [("duplicate", 4.0, "s")]
    assert t.duplicates == 3 and t.reordered == 1
    t.observe("s", 90_000, 90_050, seq=7)   # a minute later: a new episode
    assert signals(t) == ["duplicate"]
    t.observe("s", 90_100, 90_150, seq=8)   # the next number is no duplicate
    t.observe("s", 90_000, 90_160, seq=5)   # 5 arrived long ago: a duplicate, no new alarm
    assert signals(t) == [] and t.duplicates == 5


def test_sources_that_go_idle_and_never_return_are_retired_without_a_silence_alarm():
    """A fleet whose units say goodbye (``kind="idle"``) and leave: their state must
    not pile up. Fails if idle sources are skipped by retirement."""
    t = FreshnessTracker(FreshnessConfig(retire_after_ms=60_000))
    for n in range(1_000):
        t.observe(f"u{n}", n * 100, n * 100)
        t.observe(f"u{n}", n * 100 + 50, n * 100 + 50, kind="idle")
        t.check(n * 100 + 50)
    t.check(100_000 + 60_000 + 1, force=True)
    assert len(t.sources) == 0
    alarms = t.drain_alarms()
    assert {(a.signal, a.detector) for a in alarms} == {("retired", "idle")}
    assert len(alarms) == 1_000
    t.observe("u7", 200_000, 200_000)   # one that comes back is tracked again
    assert "u7" in t.sources


def _bursts(t, source, start, bursts, every=120_000, readings=50, step=20, check=None):
    """``readings`` reports ``step`` ms apart, once every ``every`` ms."""
    for b in range(bursts):
        for k in range(readings):
            at = start + b * every + k * step
            t.observe(source, at, at + 10, seq=b * readings + k)
        if check is not None:
            for c in range(start + b * every, start + (b + 1) * every, check):
                t.check(c)


def test_a_bursty_source_is_learned_within_a_few_pauses_and_then_never_silent():
    # 50 readings in one second every two minutes: its cadence is its pause, not the
    # 20 ms inside a burst
    t = FreshnessTracker()
    _bursts(t, "burst", 0, 60, check=250)
    silences = [a.detected_at for a in t.drain_alarms() if a.signal == "silence"]
    assert 1 <= len(silences) <= 3 and max(silences) < 6 * 120_000, silences
    assert t.silence_after_ms(t.sources["burst"]) > 10 * 110_000
    # ... and once it stops, it is found: 10 pauses on
    last = 60 * 120_000
    for c in range(last, last + 30 * 120_000, 10_000):
        t.check(c)
    [quiet] = [a for a in t.drain_alarms() if a.signal == "silence"]
    assert quiet.detected_at - last <= 10 * 120_000 + 60_000


def test_a_source_reporting_at_random_is_not_taken_for_silent():
    # Poisson reports, 1 s apart on average, for 6 hours: a gap of 10 mean gaps comes once
    # in 22,000 gaps; a limit of 10 times the mean gap would have called it silence
    rng = np.random.default_rng(5)
    t = FreshnessTracker()
    at = 0.0
    for i in range(6 * 3_600):
        at += rng.exponential(1_000.0)
        t.observe("random", int(at), int(at) + 10, seq=i)
        t.check(int(at) + 10)
    assert signals(t).count("silence") <= 1
    assert t.cadence_ms(t.sources["random"]) == pytest.approx(2_000, rel=0.1)


def test_an_outage_does_not_teach_a_source_to_be_quiet():
    t = FreshnessTracker()
    feed(t, "s", 0, 600)                        # 10 Hz for a minute
    t.check(60_000 + 3_500)                     # then silent: over the 3 s floor
    assert signals(t) == ["silence"]
    feed(t, "s", 120_000, 600, seq0=600)        # back after a minute's outage
    assert signals(t) == ["silence_end"]
    assert t.silence_after_ms(t.sources["s"]) == pytest.approx(3_000)  # as before


def test_sources_at_many_rates_and_in_bursts_hold_no_watermark_back_once_learned():
    # ten sources at 10 Hz, three once a minute, two in bursts every two minutes
    t = FreshnessTracker()
    reports = [(k * 100 + i, f"fast-{i}") for i in range(10) for k in range(10 * 60 * 20)]
    reports += [(k * 60_000 + 7_000 * i, f"slow-{i}") for i in range(3) for k in range(20)]
    reports += [(b * 120_000 + k * 20, f"burst-{i}") for i in range(2) for b in range(10)
                for k in range(50)]
    lags = []
    seqs: dict[str, int] = {}
    for at, source in sorted(reports):
        seqs[source] = seqs.get(source, -1) + 1
        t.observe(source, at, at + 20, seq=seqs[source])
        if at >= 6 * 120_000:  # the bursts' first pauses are silences: learned by then
            lags.append(t.lag_ms(at + 20))
    assert max(lags) < 1_000
