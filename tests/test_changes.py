"""The value detector's targets, on the detection benchmark's own processes.

AR(1) streams with rho 0, 0.5, 0.85 and 0.95, Gaussian and t(3) innovations,
unit stationary variance (sd = 1), 200 trials a cell, fixed seeds. Changes come
after 5,000 clean samples, as in ``python -m benchmarks.detection``; false
alarms count every alarm from the first sample on, without debouncing.
"""

from __future__ import annotations

import math
from multiprocessing import Pool

import numpy as np
import pytest

from benchmarks.detection import RHOS, alarms_of, ar1, run_cell
from operators.changes import ChangeDetector, cusum_threshold

TRIALS = 200
HISTORY = 5_000


def cell(change: str, rho: float, dist: str = "gauss", horizon: int = 700,
         length: int = 10_000, seed: int = 3) -> dict:
    return run_cell(("lucidstream", rho, dist, change, TRIALS, length, HISTORY, horizon,
                     seed))


def test_false_alarms_at_most_one_per_million_samples_in_every_cell():
    jobs = [("lucidstream", rho, dist, "none", TRIALS, 10_000, 0, 0, 11 + i)
            for i, (rho, dist) in enumerate((r, d) for r in RHOS for d in ("gauss", "t3"))]
    with Pool(2) as pool:
        results = pool.map(run_cell, jobs)
    for r in results:  # 2,000,000 samples a cell
        assert r["fa_per_million"] <= 1.0, r


@pytest.mark.parametrize(("rho", "bound"), [(0.0, 150), (0.5, 200), (0.85, 300), (0.95, 600)])
def test_a_3_sd_step_is_found_within_its_p95_bound(rho, bound):
    r = cell("step3", rho, horizon=bound + 100)
    assert r["found"] >= 0.95 * TRIALS and r["p95"] <= bound, r


@pytest.mark.parametrize("rho", [0.0, 0.5])
def test_the_onset_of_a_3_sd_step_is_placed_within_10_samples(rho):
    r = cell("step3", rho, horizon=250)
    assert r["onset_error_median"] <= 10, r


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.85])
def test_a_tripled_variance_is_found_within_300_samples(rho):
    r = cell("var3", rho, horizon=400)
    assert r["p95"] <= 300, r


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.85])
def test_a_ramp_of_4_sd_over_300_samples_is_found_by_450(rho):
    r = cell("ramp4", rho, horizon=450)
    assert r["found"] == TRIALS, r


def test_one_spike_is_not_a_shift():
    import numpy as np
    x = ar1(np.random.default_rng(5), 1, 3_000, 0.85, "gauss")[0]
    x[2_000] += 50.0  # one reading 50 sd off: a glitch, not a change of level
    x[2_500:2_503] -= 30.0
    assert alarms_of("lucidstream", x) == []


def test_a_change_reports_its_size_direction_onset_and_baseline():
    import numpy as np
    x = ar1(np.random.default_rng(8), 1, 6_000, 0.5, "gauss")[0] * 2.0 + 40.0  # sd 2
    x[5_000:] -= 6.0  # 3 sd down
    det = ChangeDetector()
    changes = [c for i, v in enumerate(x.tolist()) if (c := det.update(v, 1_000 * i))]
    c = changes[0]
    assert (c.kind, c.direction) == ("level", "down")
    assert abs(c.onset_ms - 5_000_000) <= 10_000 and 5_000 <= c.sample <= 5_200
    assert -3.6 <= c.magnitude <= -2.4
    assert abs(c.baseline_mean - 40.0) < 0.5 and 1.6 < c.baseline_sd < 2.4


def test_the_threshold_follows_the_budget():
    # Siegmund's in-control run length grows as exp(2kh): ten times the run, h + ln(10)/2k
    low, high = cusum_threshold(0.25, 1e6), cusum_threshold(0.25, 1e7)
    assert math.isclose(high - low, math.log(10) / 0.5, rel_tol=0.02)
    with pytest.raises(ValueError, match="warmup"):
        ChangeDetector(warmup=5)


def _duty_cycle(seed: int, n: int) -> list[float]:
    """A temperature that follows a machine's speed through a first-order lag, as a
    motor's does: lag-1 autocorrelation ~0.99, sample-to-sample differences ~0.3."""
    rng = np.random.default_rng(seed)
    speed, temp, out = 1.0, 54.0, []
    for _ in range(n):
        speed = 0.9 * speed + 0.1 * rng.uniform(0.3, 2.0) + rng.normal(0, 0.05)
        temp += 0.05 * (32 + 22 * speed - temp) + rng.normal(0, 0.3)
        out.append(temp)
    return out


def _changes(xs: list[float]) -> list:
    det = ChangeDetector()
    return [c for i, x in enumerate(xs) if (c := det.update(x, event_ms=i * 100))]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_sensor_offset_on_a_slow_duty_cycle_is_found_with_the_next_block(seed):
    clean = _duty_cycle(seed, 3_000)
    assert _changes(clean) == []  # its wander alone raises nothing
    offset = [x + (8.0 if i >= 2_000 else 0.0) for i, x in enumerate(clean)]
    found = _changes(offset)
    assert len(found) == 1
    c = found[0]
    assert (c.kind, c.direction) == ("level", "up")
    assert 2_000 < c.sample <= 2_048 and c.onset_sample == 2_001  # 1-based: sample 2,000
    assert c.onset_ms == 200_000


def test_a_step_must_beat_the_streams_own_record_of_steps():
    """A random walk that has jumped by 10 before: a jump of 20 is its normal, one of 60
    is not (the bar is four times the largest jump the stream has shown)."""
    rng = np.random.default_rng(5)
    walk = np.cumsum(rng.normal(0, 1, 4_000) + np.where(np.arange(4_000) % 400 == 7, 10, 0))
    for size, expected in ((20.0, 0), (60.0, 1)):
        xs = [x + (size if i >= 3_500 else 0.0) for i, x in enumerate(walk.tolist())]
        late = [c for c in _changes(xs) if c.sample > 3_500]
        assert len(late) == expected, (size, late)


def _against(reading: np.ndarray, reference: np.ndarray) -> list:
    """Changes of a reading judged against a reference taken out of it (as a fleet's
    common level is), the reference passed as the offset."""
    det = ChangeDetector()
    pairs = zip(reading.tolist(), reference.tolist(), strict=True)
    return [c for i, (x, off) in enumerate(pairs)
            if (c := det.update(x - off, event_ms=i * 100, offset=off))]


def test_a_reference_getting_noisier_is_not_the_streams_spread():
    """A fleet's common level is a median of peers: when some peers leave it for a
    regime of their own, it stands on fewer of them and gets noisier. The stream's own
    spread did not change, so its spread test stays quiet; a spread of its own that
    doubles is still found, through the same reference."""
    rng = np.random.default_rng(3)
    reading = ar1(rng, 1, 6_000, 0.9, "gauss")[0]
    reference = rng.normal(0, 0.2, 6_000)
    reference[3_000:] *= 4.0  # the median stands on a third as many peers, held a while
    assert [c.kind for c in _against(reading, reference)] == []
    noisier = reading.copy()
    noisier[3_000:] *= 2.0
    assert [c.kind for c in _against(noisier, reference)][:1] == ["spread"]


def test_a_slow_wander_under_noise_keeps_the_budget_from_its_first_sample():
    """A level that drifts over hundreds of samples under a sensor's noise (an AR(1) of
    rho 0.997 with 90 % of the variance, white noise the rest): its lag-1
    autocorrelation understates how far it wanders, and judged by it the wander is a
    change every few thousand samples. Its lag-2 autocovariance tells the two apart
    once the wander has been seen; before that, in a stream's first samples, a wander
    slower than what it has seen looked like a change (52 alarms in these 1,000,000
    samples, nearly all in the first 600 of a stream), so the level is judged from the
    1,000th sample on. At most 1 alarm in the million, counted from the first."""
    from benchmarks.detection import process
    alarms = 0
    for row in process(np.random.default_rng(11), 100, 10_000, "0.997+noise", "gauss"):
        det = ChangeDetector()
        alarms += sum(1 for i, v in enumerate(row.tolist()) if det.update(v, i))
    assert alarms <= 1


def test_a_young_stream_judges_no_level_before_young_samples():
    """A 5 sd step at sample 300 of a white-noise stream is its normal with the default
    ``young`` (1,000 samples), and a change with ``young=100``."""
    rng = np.random.default_rng(2)
    xs = rng.normal(0, 1, 2_000) + np.where(np.arange(2_000) >= 300, 5.0, 0.0)
    for young, found in ((1_000, False), (100, True)):
        det = ChangeDetector(young=young)
        changes = [c for i, v in enumerate(xs.tolist()) if (c := det.update(v, i))]
        assert bool([c for c in changes if c.kind == "level"]) == found, (young, changes)
    with pytest.raises(ValueError, match="young"):
        ChangeDetector(warmup=30, young=20)


def _coarse(seed: int, step: float, n: int = 50_000, jump: float = 0.0) -> list[float]:
    """A room's temperature that wanders slowly (an AR(1) of rho 0.995, sd 1), read by a
    sensor that reports in steps of ``step`` degrees, at 10 Hz; up ``jump`` degrees from
    sample 30,000."""
    rng = np.random.default_rng(seed)
    x, out = 0.0, []
    for i, e in enumerate(rng.normal(0, 0.1, n).tolist()):
        x = 0.995 * x + e
        out.append(round((20 + x + (jump if i >= 30_000 else 0.0)) / step) * step)
    return out


def test_a_sensor_in_coarse_steps_raises_nothing_by_its_steps():
    """A reading in steps as large as its spread repeats itself most of the time (92 %
    of readings in whole degrees). Its warm-up may never change, and a spread learned
    from it, or from a median of differences that are mostly 0, is a thousandth of what
    the sensor hides: judged by it, the reading's steps were changes (1,061 in these
    200,000 readings in whole degrees, 2,073 in half degrees). Now a
    warm-up that never changed goes on, a spread is at least the steps' own (q /
    sqrt(12), and q / sqrt(6) for differences), and the spread is judged only where the
    sensor resolves it: none."""
    for step in (1.0, 0.5):
        for seed in range(1, 5):
            det = ChangeDetector()
            found = [c for i, v in enumerate(_coarse(seed, step)) if (c := det.update(v, 100 * i))]
            assert found == [], (step, seed, found[:3])


def test_a_coarse_sensors_step_of_a_few_of_its_steps_is_found():
    """The same room, up 5 degrees at once (5 sd of its wander, 5 of the sensor's steps):
    found by the step test in 3 blocks where the CUSUM is blind, and by the CUSUM within
    the 1,024 samples a block waits before it is learned where it is not."""
    for seed in range(1, 5):
        det = ChangeDetector()
        at = next((i for i, v in enumerate(_coarse(seed, 1.0, 32_000, jump=5.0))
                   if det.update(v, 100 * i) and i >= 30_000), None)
        assert at is not None and at - 30_000 <= 1_024, (seed, at)


def test_a_warm_up_that_never_changed_goes_on_until_the_stream_does():
    """500 equal readings, then noise of sd 1: the baseline is the noise's, not a
    spread of nothing."""
    rng = np.random.default_rng(4)
    det = ChangeDetector()
    xs = [7.0] * 500 + (7.0 + rng.normal(0, 1, 2_000)).tolist()
    found = [c for i, v in enumerate(xs) if (c := det.update(v, 100 * i))]
    assert det.baseline is not None and 0.7 < det.baseline[1] < 1.3, det.baseline
    assert found == [], found


def test_a_coarse_sensors_slow_wander_keeps_the_budget():
    """A tank's temperature that wanders over minutes (an AR(1) of rho 0.999 at 2 Hz,
    sd 1.1) in whole degrees, 8 streams of 20,000 readings. The steps' own noise is
    white: taken for the signal's, it put the lag-1 autocorrelation at 0.94-0.97, the
    wander's scale at a fraction of its own, and the level's sd under what the steps
    hide once the reading sat on one for a while: 166 changes. Both now allow for the
    steps: none."""
    found = 0
    for seed in range(1, 9):
        rng = np.random.default_rng(seed)
        det, x = ChangeDetector(), 0.0
        for i, e in enumerate(rng.normal(0, 0.05, 20_000).tolist()):
            x = 0.999 * x + e
            found += det.update(float(round(40 + x)), 500 * i) is not None
    assert found == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_level_far_out_for_a_while_is_found_within_4_readings_even_once_an_hour(seed):
    """The held test: at one reading an hour, a flow that falls to a quarter of its level
    for 15 readings (real: river's Water Flow, tests/test_real_series.py). The level
    CUSUM counts each reading at most to its clip and would need about 60; a single
    reading as far out, or a spike dying away through the stream's dependence, is not
    a level."""
    rng = np.random.default_rng(seed)
    x = 101.0 + ar1(rng, 1, 600, 0.8, "gauss")[0] * 0.6
    x[400:415] = 24.3 + rng.normal(0, 0.05, 15)  # the low moment
    x[300] += 40.0  # one reading far out: no change
    x[200:210] += 10.0 * 0.8 ** np.arange(10)  # a shock that dies away: no change
    hour = 3_600_000
    det, found = ChangeDetector(), []
    for i, v in enumerate(x.tolist()):
        change = det.update(v, event_ms=i * hour)
        if change is not None:
            found.append((i, change.direction, change.onset_sample - 1))
    assert found and found[0][:2] == (403, "down") and found[0][2] == 400, found
    # the way back up is found too, and nothing else
    assert all(i >= 400 for i, _, _ in found) and any(d == "up" for _, d, _ in found), found
