"""Drift detection on synthetic streams with drift injected at known indices.

Bounds on independent samples (the autocorrelated targets are in test_changes.py):
after the warm-up, a sudden 2-sigma mean shift is flagged within 150 samples of that
source, a 3x variance increase within 300, a gradual shift of 3 sigma over 2,000
samples before it completes, a frozen sensor after exactly ``freeze_run`` repeats, an
error rate rising from 5% to 30% within 600 outcomes; on stationary data at most 5
false alarms per million events.
"""

from __future__ import annotations

import math
import random

import pytest

from operators.drift import DriftConfig, DriftMonitor

CHANGE = 5_000


def run(stream, source="s1", name="v", config=None):
    """Feed ``stream`` (a list of floats); returns [(signal, sample index)]."""
    monitor = DriftMonitor(config)
    found = []
    for i, x in enumerate(stream):
        monitor.observe(source, {name: x}, event_ms=i, now=i * 100)
        found += [(a.signal, i, a.source_id) for a in monitor.drain_alarms()]
    return found


def first(found, signal):
    hits = [i for s, i, _ in found if s == signal]
    return hits[0] if hits else None


@pytest.mark.parametrize("seed", range(3))
def test_sudden_mean_shift(seed):
    rng = random.Random(seed)
    stream = [rng.gauss(10 if i < CHANGE else 12, 1) for i in range(8_000)]
    found = run(stream, source="pump-3", name="pressure")
    at = first(found, "value:pressure")
    assert at is not None and CHANGE <= at <= CHANGE + 150, found
    assert all(src == "pump-3" for _, _, src in found)


@pytest.mark.parametrize("seed", range(3))
def test_gradual_shift(seed):
    rng = random.Random(seed)
    def level(i):
        return 0.0 if i < CHANGE else min(3.0, 3.0 * (i - CHANGE) / 2_000)
    found = run([rng.gauss(level(i), 1) for i in range(9_000)])
    at = first(found, "value:v")
    assert at is not None and CHANGE <= at <= CHANGE + 2_000, found


@pytest.mark.parametrize("seed", range(3))
def test_variance_change(seed):
    rng = random.Random(seed)
    found = run([rng.gauss(0, 1 if i < CHANGE else 3) for i in range(8_000)])
    at = first(found, "variance:v")
    assert at is not None and CHANGE <= at <= CHANGE + 300, found


def test_frozen_sensor_is_its_own_signal_and_constant_streams_are_not_frozen():
    rng = random.Random(1)
    stream = [rng.gauss(0, 1) if i < CHANGE else 0.25 for i in range(6_000)]
    found = run(stream)
    assert first(found, "frozen:v") == CHANGE + DriftConfig().freeze_run - 1
    assert run([3.0] * 2_000) == []  # never varied: a constant, not a frozen sensor


@pytest.mark.parametrize("seed", range(3))
def test_rising_error_rate(seed):
    rng = random.Random(seed)
    monitor = DriftMonitor()
    at = None
    for i in range(12_000):
        p = 0.05 if i < CHANGE else 0.30
        monitor.observe_errors([rng.random() < p], event_ms=i, now=i * 100)
        alarms = monitor.drain_alarms()
        if alarms and at is None:
            at = i
            assert alarms[0].signal == "error" and alarms[0].source_id == ""
    assert at is not None and CHANGE <= at <= CHANGE + 600


def test_score_shift_is_fleet_wide():
    rng = random.Random(3)
    monitor = DriftMonitor()
    for i in range(6_000):
        monitor.observe_model([min(1, max(0, rng.gauss(0.2 if i < 3_000 else 0.6, 0.05)))],
                              event_ms=i, now=i * 100)
    signals = {(a.signal, a.source_id) for a in monitor.drain_alarms()}
    assert ("score", "") in signals


def test_a_model_score_that_moves_by_thousandths_is_no_alarm():
    # a shard's mean score over a few steady sources barely moves: a step of 0.004 is
    # several of its sds, and changes no decision; 0.1 is reported
    found = {}
    for step in (0.004, 0.1):
        rng = random.Random(5)
        monitor = DriftMonitor()
        for i in range(6_000):
            level = 0.3 + (step if i >= 3_000 else 0.0)
            monitor.observe_model([rng.gauss(level, 0.001)], event_ms=i, now=i * 100)
        found[step] = {a.signal for a in monitor.drain_alarms()}
    assert found == {0.004: set(), 0.1: {"score", "confidence"}}
    monitor = DriftMonitor(DriftConfig(score_min_change=0.0))  # every change, as asked
    rng = random.Random(5)
    for i in range(6_000):
        monitor.observe_model([rng.gauss(0.3 + (0.004 if i >= 3_000 else 0.0), 0.001)],
                              event_ms=i, now=i * 100)
    assert "score" in {a.signal for a in monitor.drain_alarms()}


def test_false_alarm_budget_on_200k_stationary_events():
    """20 sources x 10,000 events, 3 values each: under 5 alarms per million events."""
    rng = random.Random(42)
    monitor = DriftMonitor()
    alarms = 0
    for i in range(10_000):
        for s in range(20):
            monitor.observe(f"s{s}", {"a": rng.gauss(5, 2), "b": rng.gauss(-1, 0.1),
                                      "c": rng.expovariate(1.0)}, event_ms=i, now=i * 100)
        alarms += len(monitor.drain_alarms())
    assert alarms <= 1, alarms  # 200,000 events: at most 5 per million


def test_alarm_ids_repeat_exactly_on_replay():
    rng = random.Random(5)
    stream = [rng.gauss(0 if i < 2_000 else 4, 1) for i in range(4_000)]
    def ids():
        m = DriftMonitor()
        for i, x in enumerate(stream):
            m.observe("s", {"v": x}, i, i * 100)
        return [a.alarm_id for a in m.drain_alarms()]
    assert ids() == ids() and ids()


def test_unknown_detector_is_a_clear_error():
    with pytest.raises(ValueError, match="use one of"):
        DriftConfig(values="magic")


def test_names_beyond_the_per_source_limit_are_one_alarm_not_a_crash():
    """Fails when drift watches every name a source ever sends (unbounded memory) or
    when the alarm for the rest cannot be raised (a KeyError stopped the flow once)."""
    monitor = DriftMonitor(DriftConfig(max_names_per_source=8))
    for i in range(40):
        monitor.observe("wide", {f"v{(i + k) % 20}": float(k) for k in range(5)},
                        event_ms=i * 1_000, now=i * 1_000)
    assert monitor.streams == 8
    alarms = [a for a in monitor.drain_alarms() if a.signal == "too_many_names"]
    assert len(alarms) == 2 and alarms[0].source_id == "wide"  # debounced: 30 s apart


def _fleet_run(steps: dict[str, float], n: int = 4_000, at: int = 3_000) -> list:
    """Six sources of Gaussian noise around their own levels; from sample ``at`` each
    source in ``steps`` moves by that many of its sds. Alarms drained on the pipeline
    clock (source level changes wait out the fleet's grace), then at the end."""
    rng = random.Random(7)
    monitor, found = DriftMonitor(), []
    for i in range(n):
        for k in range(6):
            source = f"u{k}"
            x = 10.0 * k + rng.gauss(0, 1) + (steps.get(source, 0.0) if i >= at else 0.0)
            monitor.observe(source, {"v": x}, event_ms=i * 100, now=i * 100)
        found += [(a.signal, a.source_id) for a in monitor.drain_alarms(i * 100)]
    return found + [(a.signal, a.source_id) for a in monitor.drain_alarms()]


def test_a_fleet_that_moves_together_is_one_alarm_not_one_per_source():
    moved = _fleet_run({f"u{k}": size for k, size in enumerate((3, 4, 5, 5, 6, 9))})
    assert ("fleet:v", "") in moved
    assert [a for a in moved if a[1]] == []  # u5 moved 4 sd beyond the fleet's median: held


def test_one_source_that_moves_against_its_fleet_is_its_own_alarm():
    moved = _fleet_run({"u5": 6.0})
    assert moved == [("peer:v", "u5")]



def test_a_source_that_jumps_far_is_its_own_alarm_though_the_median_moved_with_it():
    """Five smooth sources (slow waves, little noise); one jumps 20 of its sds (a unit
    now reporting Fahrenheit). The median of five moves a little at the same moment,
    and the fleet's detector sees it; but one source of five is no fleet: that source
    is named, and no fleet alarm is raised."""
    rng = random.Random(7)
    monitor, found, details = DriftMonitor(), [], []
    for i in range(4_000):
        for k in range(5):
            x = 10.0 * k + math.sin(2 * math.pi * i / 2_000 + k) + rng.gauss(0, 0.01) + \
                (20.0 if i >= 3_000 and k == 2 else 0.0)
            monitor.observe(f"u{k}", {"v": x}, event_ms=i * 100, now=i * 100)
        alarms = [a for a in monitor.drain_alarms(i * 100) if a.event_ms >= 300_000]
        found += [(a.signal, a.source_id, a.event_ms // 100) for a in alarms]
        details += [a.details for a in alarms]
    assert found == [("peer:v", "u2", 3_019)]  # when the median's move was found
    assert details[0]["moved"] == 1 and details[0]["measured"] == 5
    assert details[0]["fleet_move"] > 0


def test_a_sensor_in_coarse_steps_is_not_frozen_by_its_steps_but_a_stuck_one_is():
    """A room's temperature read in whole degrees at 10 Hz repeats itself in 92 % of its
    readings, in runs of hundreds while its slow wander sits inside one degree, and a
    door's 0/1 state changes every 5 minutes: with a fixed run of 50 these 400,000
    readings of each raised 786 ``frozen:temp_c`` and 112 ``frozen:door`` alarms. The
    run that is news is now this stream's own (its rate of repeats, at its upper bound
    for the readings seen, and 4 times its longest run): none, and a sensor stuck for 10
    minutes is still found within 2 minutes (59 to 104 s in these 8 streams)."""
    for seed in range(1, 9):
        rng = random.Random(seed)
        monitor = DriftMonitor(DriftConfig(min_peers=None))
        x, held = 0.0, 0.0
        for i in range(50_000):
            x = 0.995 * x + rng.gauss(0, 0.1)
            reading = round(20 + x)
            if 40_000 <= i < 46_000:  # stuck
                reading = held
            held = reading
            door = 1 if (i // 3_000) % 2 else 0
            monitor.observe("room-1", {"temp_c": reading, "door": door}, i * 100, now=i * 100)
        frozen = [(a.signal, a.event_ms // 100) for a in monitor.drain_alarms()
                  if a.signal.startswith("frozen:")]
        assert [at for signal, at in frozen if not 40_000 <= at < 46_000] == [], (seed, frozen)
        assert any(signal == "frozen:temp_c" and 40_000 <= at <= 41_200
                   for signal, at in frozen), (seed, frozen)


def test_a_fleet_of_sensors_in_coarse_steps_raises_nothing_by_their_steps():
    """Eight rooms, each wandering slowly about its own level and all with a slow common
    drift, their temperatures read in whole degrees and their humidity in whole percent,
    against their fleet: 2,000 s at 10 Hz. Judged by spreads learned from readings that
    mostly repeat, this raised 347 ``frozen:``, 86 ``peer:`` and 1 ``variance:`` alarm; it
    raises none."""
    rng = random.Random(1)
    monitor = DriftMonitor(DriftConfig())
    own, common = [0.0] * 8, 0.0
    for i in range(20_000):
        common = 0.999 * common + rng.gauss(0, 0.03)
        for u in range(8):
            own[u] = 0.995 * own[u] + rng.gauss(0, 0.1)
            values = {"temp_c": round(20 + u + common + own[u]),
                      "humidity": round(40 + 2 * own[u] + rng.gauss(0, 0.5))}
            monitor.observe(f"room-{u}", values, i * 100 + u, now=i * 100 + u)
    assert [(a.signal, a.source_id) for a in monitor.drain_alarms()] == []


def _meters(seed, readings, meters=6):
    """Energy meters at 2 Hz: a power that wanders (kW) and its cumulative energy (kWh)."""
    rng = random.Random(seed)
    energy = [rng.uniform(1_000, 5_000) for _ in range(meters)]
    load = [0.0] * meters
    for i in range(readings):
        row = []
        for k in range(meters):
            load[k] = 0.95 * load[k] + rng.gauss(0, 0.3)
            power = max(0.0, 3.0 + load[k])
            energy[k] += power / 7_200
            row.append((f"meter-{k}", {"energy_kwh": round(energy[k], 4),
                                       "power_kw": round(power, 3)}))
        yield i, row


@pytest.mark.parametrize("peers", [None, 3])
def test_a_cumulative_counter_is_watched_by_its_increments(peers):
    """An energy meter's reading only ever climbs: watched as a level, its detectors took
    the climb for a change of spread (5 ``variance:energy_kwh`` alarms over 12 meters in
    20 minutes). A value whose warm-up readings never fall and rise in at least half
    their steps is a counter, watched by its increments: none over these 6 meters' hour,
    alone or as a fleet, and a meter whose consumption goes up fivefold (12 kW more, 13
    of its sds) is found within 30 s."""
    monitor, found = DriftMonitor(DriftConfig(min_peers=peers)), []
    for i, row in _meters(3, 7_200):
        for source, values in row:
            if source == "meter-2" and i >= 6_000:  # 12 kW more
                values = dict(values, energy_kwh=round(
                    values["energy_kwh"] + (i - 5_999) * 12.0 / 7_200, 4))
            monitor.observe(source, values, event_ms=i * 500, now=i * 500)
        found += [(a.signal, a.source_id, a.event_ms // 500, a.details.get("of"))
                  for a in monitor.drain_alarms(i * 500)]
    assert [f for f in found if f[2] < 6_000] == [], found
    energy = [f for f in found if f[0].endswith(":energy_kwh")]
    assert energy and energy[0][1] == "meter-2", found
    assert 6_000 <= energy[0][2] <= 6_060 and energy[0][3] == "increments", found


def test_a_counter_reset_is_no_increment_and_a_value_that_falls_is_no_counter():
    monitor = DriftMonitor(DriftConfig(min_peers=None))
    for i in range(3_000):
        total = (i % 1_000) * 2.0 + 1.0  # counts up, back to 1 every 1,000 readings
        warm = 20.0 + i * 0.01 - (i > 100) * 0.05 * (i - 100)  # climbs, then falls
        monitor.observe("c", {"count": total, "warm": warm}, event_ms=i * 100, now=i * 100)
    streams = monitor._streams["c"]
    assert streams["count"].counter and not streams["warm"].counter
    assert not [a for a in monitor.drain_alarms(300_000) if a.signal.endswith(":count")]


def test_a_counter_idle_through_its_warm_up_is_known_once_it_counts():
    """An energy meter whose machine is off when it is first heard reads the same for
    minutes, then climbs. Judged by its first readings alone it was a level, and its
    climb raised a level alarm every half minute (97 in an hour for one meter); it is a
    counter once its latest warm-up's worth of readings rose."""
    monitor, found = DriftMonitor(DriftConfig(min_peers=None)), []
    rng = random.Random(5)
    energy, load = 2_000.0, 0.0
    for i in range(7_200):
        load = 0.95 * load + rng.gauss(0, 0.3)
        power = 0.0 if i < 600 else max(0.0, 3.0 + load)  # off for its first 5 minutes
        energy += power / 7_200
        monitor.observe("meter", {"energy_kwh": round(energy, 4)}, event_ms=i * 500,
                        now=i * 500)
        found += [a.signal for a in monitor.drain_alarms(i * 500)]
    assert monitor._streams["meter"]["energy_kwh"].counter
    assert found.count("value:energy_kwh") <= 1, found
