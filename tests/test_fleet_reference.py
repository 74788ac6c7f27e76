"""The fleet as a reference: a common movement is one fleet alarm, one source
moving against its peers is that source's alarm, a clean fleet raises none.

24 sources at 5 Hz, each an AR(1) signal (rho 0.85, like a motor temperature)
with its own level and scale, as a real fleet's units differ.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.detection import ar1
from operators.drift import DriftConfig, DriftMonitor, _a_group, _went_along

SOURCES, HZ = 24, 5


def fleet(seconds: int, seed: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    noise = ar1(rng, SOURCES, seconds * HZ, 0.85, "gauss")
    levels = rng.uniform(30, 80, SOURCES)[:, None]
    scales = rng.uniform(0.5, 3.0, SOURCES)[:, None]
    return noise, levels, scales


def replay(values: np.ndarray, monitor: DriftMonitor | None = None) -> list:
    monitor = monitor or DriftMonitor()
    alarms = []
    for i in range(values.shape[1]):
        t = i * 1_000 // HZ
        for s in range(SOURCES):
            monitor.observe(f"unit-{s:02d}", {"temp": float(values[s, i])}, t, t + 20)
        alarms += monitor.drain_alarms()
    return alarms


def test_a_clean_hour_of_24_sources_raises_nothing():
    noise, levels, scales = fleet(3_600)
    assert replay(levels + scales * noise) == []


def test_the_whole_fleet_warming_together_is_one_fleet_alarm():
    noise, levels, scales = fleet(1_800, seed=5)
    shift = np.zeros_like(noise)
    shift[:, 1_200 * HZ:] = 2.0  # every unit +2 sd at minute 20
    alarms = replay(levels + scales * (noise + shift))
    assert [(a.signal, a.source_id, a.direction) for a in alarms] == [("fleet:temp", "", "up")]
    assert abs(alarms[0].onset_ms - 1_200_000) <= 30_000


def test_one_source_ramping_against_its_peers_is_its_peer_alarm_within_5_minutes():
    noise, levels, scales = fleet(1_800, seed=6)
    ramp = np.zeros_like(noise)
    start = 900 * HZ
    ramp[7, start:] = np.minimum(3.0, 3.0 * np.arange(1, noise.shape[1] - start + 1)
                                 / (600 * HZ))  # 3 sd over 10 minutes
    alarms = replay(levels + scales * (noise + ramp))
    assert {(a.signal, a.source_id) for a in alarms} == {("peer:temp", "unit-07")}
    assert alarms[0].detected_at - 900_000 <= 300_000


def test_without_peers_a_source_is_judged_on_its_own_baseline():
    noise, levels, scales = fleet(600, seed=7)
    values = levels + scales * noise
    values[0, 2_000:] += 3.0 * scales[0, 0]
    monitor = DriftMonitor(DriftConfig(min_peers=None))
    assert [(a.signal, a.source_id) for a in replay(values, monitor)] == \
        [("value:temp", "unit-00")]


def hall(source_id: str) -> str:
    """Units 0-11 stand in hall A, 12-23 in hall B."""
    return "hall-a" if int(source_id[-2:]) < 12 else "hall-b"


def test_peers_are_the_flows_choice_one_hall_warming_is_that_halls_fleet_alarm():
    noise, levels, scales = fleet(1_800, seed=9)
    shift = np.zeros_like(noise)
    shift[:12, 1_200 * HZ:] = 2.0  # hall A warms by 2 sd; hall B holds
    alarms = replay(levels + scales * (noise + shift),
                    DriftMonitor(DriftConfig(peer_group=hall)))
    assert [(a.signal, a.source_id, a.details.get("group"), a.direction) for a in alarms] \
        == [("fleet:temp", "", "hall-a", "up")]


def cell(source_id: str) -> str:
    """Units 0-4 make one small cell, the rest another: a shard of five, say."""
    return "small" if int(source_id[-2:]) < 5 else "large"


def test_most_of_a_small_group_moving_is_named_unit_by_unit_not_taken_for_its_fleet():
    """Three of a five-unit group shift 4 sd: the group's median moves with them, but
    two of five stayed put, so it is no fleet move: each of the three is named. (The
    median of a group split in two is noisier than before; what it does after the
    shift's first minute is not asserted here.)"""
    noise, levels, scales = fleet(1_800, seed=11)
    shift = np.zeros_like(noise)
    shift[:3, 1_200 * HZ:] = 4.0
    alarms = [a for a in replay(levels + scales * (noise + shift),
                                DriftMonitor(DriftConfig(peer_group=cell)))
              if a.detected_at < 1_260_000]
    found = {(a.signal, a.source_id, a.direction) for a in alarms}
    assert found == {("peer:temp", f"unit-{k:02d}", "up") for k in range(3)}
    assert all(abs(a.onset_ms - 1_200_000) <= 30_000 for a in alarms)
    assert all(a.details["moved"] == 3 and a.details["measured"] == 5 for a in alarms)


def wandering_shard(seconds: int, seed: int, warming: slice = slice(None),
                    units: int = 7, hz: int = 8) -> np.ndarray:
    """A shard of motors whose temperatures follow a common slow wander (the hall's
    air, their shared duty cycle: AR(1), rho 0.99, half the variance) and each its own
    faster one, each unit with its own level and scale. The ``warming`` units warm at
    minute 6:40, each by its own 2-6 sd."""
    rng = np.random.default_rng(seed)
    common = ar1(rng, 1, seconds * hz, 0.99, "gauss")
    own = ar1(rng, units, seconds * hz, 0.85, "gauss")
    levels = rng.uniform(30, 80, units)[:, None]
    scales = rng.uniform(0.5, 3.0, units)[:, None]
    warm = np.zeros((units, seconds * hz))
    warm[:, 400 * hz:] = 4.0 * rng.uniform(0.5, 1.5, units)[:, None]
    still = np.ones(units, dtype=bool)
    still[warming] = False
    warm[still] = 0.0
    return levels + scales * (np.sqrt(0.5) * (common + own) + warm)


def shard_alarms(values: np.ndarray, hz: int = 8) -> list:
    """The shard's alarms, held ones released by the pipeline clock, as in the flow."""
    monitor, alarms = DriftMonitor(DriftConfig(relation_block=0)), []
    for i in range(values.shape[1]):
        t = i * 1_000 // hz
        for s in range(values.shape[0]):
            monitor.observe(f"unit-{s:02d}", {"temp": float(values[s, i])}, t, t + 20)
        alarms += monitor.drain_alarms(t + 20)
    return alarms + monitor.drain_alarms()


@pytest.mark.parametrize("seed", range(4))
def test_a_shard_warming_by_each_units_own_amount_is_one_fleet_alarm_within_30_s(seed):
    """Every unit warms, each by its own amount. The shard's median moves with them at
    once, so each unit against it moves by the difference between its warming and the
    median's, a step its quiet residual shows within seconds; the fleet's own detector,
    judging a common level that wanders slowly, finds the move late or not within the
    run. The peers' move measured at the first such unit's onset is the fleet's alarm,
    and explains each unit's change: no per-unit alarm. (With the fleet detector's
    alarm as the only explanation, units were named and the fleet found after 25 s to
    never.)"""
    alarms = [a for a in shard_alarms(wandering_shard(600, seed)) if a.detected_at >= 300_000]
    assert [(a.signal, a.source_id, a.direction) for a in alarms] == [("fleet:temp", "", "up")]
    assert alarms[0].detected_at - 400_000 <= 30_000
    assert abs(alarms[0].onset_ms - 400_000) <= 5_000


@pytest.mark.parametrize("seed", range(4))
def test_one_unit_warming_in_a_wandering_shard_is_still_its_own_alarm(seed):
    """The same shard, one unit warming alone: its peers did not move, so nothing
    explains its change away."""
    alarms = shard_alarms(wandering_shard(600, seed, warming=slice(3, 4)))
    after = {(a.signal, a.source_id) for a in alarms if a.detected_at >= 300_000}
    assert after == {("peer:temp", "unit-03")}


def test_a_group_must_stand_clear_of_the_rest_by_more_than_the_levels_usual_move():
    """Moves measured on simulated shards, with the common level's usual move between
    the windows that measured them. A control stream (seed 6): one robot recharged and
    sped up, the rest of the shard spread about the fleet's move of 1.24; three went
    half of it, but the moves run on with no gap three times the usual move of 0.50:
    one fleet moving unevenly, not three units (two false alarms). Two robots slowing
    down on low batteries, the rest still: a group. Three units of a shard of five
    shifted 4 of their own sds (seed 7), one of the two others wandering down: a group.
    Until the usual move is learned, no group is named."""
    uneven = {"r1": 0.3, "r3": 0.96, "r8": 3.5, "r15": 1.76, "r17": -0.92, "r20": -0.19,
              "r22": -0.78}
    assert _went_along(uneven, 1.24) == ["r15", "r3", "r8"]
    assert not _a_group(uneven, 1.24, _went_along(uneven, 1.24), 0.496)
    apart = {"r0": 0.01, "r2": -5.78, "r9": -0.35, "r14": -0.53, "r16": -0.34, "r21": 0.66,
             "r23": -4.67}
    assert _a_group(apart, -6.23, _went_along(apart, -6.23), 0.65)
    shifted = {"r4": 3.88, "r6": 0.08, "r10": 3.01, "r12": 6.63, "r19": -2.62}
    assert _a_group(shifted, 2.11, _went_along(shifted, 2.11), 0.573)
    assert not _a_group(shifted, 2.11, _went_along(shifted, 2.11), None)


def test_a_source_reporting_faster_than_its_fleet_counts_its_samples_as_fewer_rounds():
    """A round is one sample of every source. Two units of seven report at 8 Hz, five
    at 2 Hz: a round closes every 7 samples, 3.7 a second, so the fast units' last 80
    samples (10 s) are 37 rounds, and a slow unit's last 20 (10 s) as many. Where a held
    change's onset lies among the kept rounds depends on it."""
    values, hz = wandering_shard(300, seed=1), 8
    monitor = DriftMonitor(DriftConfig(relation_block=0))
    every = [4, 4, 4, 4, 4, 1, 1]
    for i in range(values.shape[1]):
        t = i * 1_000 // hz
        for s in range(values.shape[0]):
            if i % every[s] == 0:
                monitor.observe(f"unit-{s:02d}", {"temp": float(values[s, i])}, t, t + 20)
    streams = monitor._streams
    assert 34 <= streams["unit-06"]["temp"].rounds_since(80) <= 40
    assert 34 <= streams["unit-00"]["temp"].rounds_since(20) <= 40


@pytest.mark.parametrize("seed", range(4))
def test_a_unit_that_rises_while_its_shard_cools_is_its_own_alarm(seed):
    """The shard cools, each unit by its own 2-6 sd, while one unit rises 4 sd: its
    change against the fleet is within four times the fleet's move, but it went the
    other way, so its peers' move does not explain it."""
    hz = 8
    values = wandering_shard(600, seed, warming=slice(0, 0))
    sd = values[:, :400 * hz].std(axis=1)
    move = -4.0 * np.random.default_rng(100 + seed).uniform(0.5, 1.5, len(sd))
    move[3] = 4.0
    values[:, 400 * hz:] += (move * sd)[:, None]
    alarms = {(a.signal, a.source_id, a.direction) for a in shard_alarms(values)
              if a.detected_at >= 300_000}
    assert ("peer:temp", "unit-03", "up") in alarms


@pytest.mark.parametrize("seed", range(1, 7))
def test_a_fleets_median_changing_hands_is_no_change_of_its_spread(seed):
    """Six sources wandering slowly (an AR(1) level, 5 minutes to forget) under
    noises of different size: the one in the middle, whose noise the median takes,
    changes every minute or so, with no change in any source. The fleet raises no
    ``variance:`` alarm of its own (a test of the median's spread raised one after
    421 s in seed 2 and after 209 s in seed 6)."""
    rng = np.random.default_rng(seed)
    hz, n = 10, 8_000
    wander = ar1(rng, 6, n, float(np.exp(-1 / (300 * hz))), "gauss")
    noise = np.array([0.15, 0.3, 0.5, 0.8, 1.2, 2.0])[:, None]
    values = 20 + 5 * np.arange(6)[:, None] + 3 * wander + noise * rng.standard_normal((6, n))
    alarms = shard_alarms(values, hz=hz)
    assert [a for a in alarms if a.signal == "variance:temp" and not a.source_id] == []
