"""A clean stream from a generator the detectors were not built beside
(``benchmarks/foreign.py``: pumps at 2 Hz that start and stop, a temperature in whole
degrees, a 0/1 running state), replayed through the CLI into a real embedded store.

What a user relies on: a stream unlike the simulator's is not a flood of alarms. Of
these 4 streams of 20 minutes, the detectors as they were before sensors in steps were
handled raised 201, 192, 193 and 205 alarms that no start or stop explains (a whole-degree
temperature judged by a spread of nothing, every 0/1 state frozen after each start or
stop); now 4, 1, 3 and 0 (one pump's flow after a restart, and one whole-degree
temperature that sat on a step for 205 s in its first minutes), and the starts and
stops are seen. The model is judged within the streams' first minutes: with its watch
as it was, its score, confidence and canary alarms made 36 (a canary about a battery
the pumps never carry, and its own learning taken for news).

Nor is it a flood of ``inspect``: the slow path revised 2.8 % of these streams' windows
(its risk an RMS of z-scores of window means against a short history, at a fixed 3.0),
and each revision got the rest of its replay batch's windows of that pump rejected, so
40 % of the slow decisions were ``inspect``. Now a revision is due to a start or stop, or
the budget (100 per million windows, about 1 in these 11,520) says why not.
"""

from __future__ import annotations

from benchmarks.foreign import START_MS, query, replay, run, write_meters, write_mixed_rates


def test_a_clean_stream_from_another_generator_is_not_a_flood_of_alarms(tmp_path):
    results = [run(seed, 20.0, tmp_path) for seed in (1, 2, 3, 4)]
    false = sum(r["false"] for r in results)
    frozen = sum(n for r in results for signal, n in r["false_by_signal"].items()
                 if signal.startswith("frozen:"))
    assert false <= 12 and frozen <= 1, results
    for r in results:
        assert r["seen"] >= 0.9 * r["starts_stops"], r
    windows = sum(r["slow_windows"] for r in results)
    assert windows >= 4 * 2_800, results
    assert sum(r["slow_unexplained"] for r in results) <= 4, results
    assert sum(r["slow_revised"] for r in results) <= 2 * sum(r["starts_stops"] for r in results)
    assert sum(r["slow_rejected"] for r in results) <= 0.001 * windows, results


def test_a_clean_stream_of_sources_at_many_rates_and_in_bursts_is_decided_in_normal(tmp_path):
    # when a source's cadence was the mean of its gaps, the bursts' pauses were silences
    # (their cadence the 20 ms inside a burst) that held the watermark back: this stream
    # went CONSERVATIVE at 31 s and stayed degraded for the 20 minutes
    events = tmp_path / "mixed.jsonl"
    write_mixed_rates(events, 1, 20.0)
    store = replay(events)
    learned = START_MS + 5 * 60_000  # the bursts' first two pauses are silences
    changes = query(store, "SELECT toUnixTimestamp64Milli(at) AS at, to_mode, reason "
                           "FROM mode_changes FINAL ORDER BY at")
    assert not [c for c in changes if c["at"] >= learned], changes
    assert not changes or changes[-1]["to_mode"] == "NORMAL", changes
    [[escalated, decided]] = [list(r.values()) for r in query(
        store, "SELECT countIf(escalated), count() FROM decisions FINAL "
               f"WHERE event_time >= fromUnixTimestamp64Milli({learned})")]
    assert escalated == 0 and decided > 80_000
    silences = query(store, "SELECT source_id, count() AS n FROM drift_events FINAL "
                            "WHERE signal = 'silence' GROUP BY source_id")
    assert {r["source_id"] for r in silences} <= {"burst-0", "burst-1"}, silences
    assert all(r["n"] <= 3 for r in silences), silences


def test_energy_meters_counting_up_raise_no_alarm(tmp_path):
    # a cumulative counter watched as a level: 5 variance:energy_kwh alarms on these 12
    # meters in 20 minutes; watched by its increments, none
    events = tmp_path / "meters.jsonl"
    write_meters(events, 4, 20.0)
    store = replay(events)
    assert query(store, "SELECT source_id, signal FROM drift_events FINAL") == []
    modes = query(store, "SELECT to_mode FROM mode_changes FINAL")
    assert modes == [], modes
