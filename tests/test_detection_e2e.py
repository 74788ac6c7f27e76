"""Freshness and modes on the fleet flow: one dark unit is its own problem, a cut-off
half of the fleet is everyone's, a clean replay stays NORMAL. Through the real CLI,
flow and store; 24 robots at 20 Hz (a 50 ms cadence)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import cli, query_scalar, with_outage
from tests.test_semantic_e2e import write

ROBOTS, RATE = 24, 480  # events/s over the fleet: 20 Hz a robot


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> list[dict]:
    path = tmp_path_factory.mktemp("fleet") / "clean.jsonl"
    assert cli("simulate", "--out", str(path), "--events", str(RATE * 150), "--sources",
               str(ROBOTS), "--rate", str(RATE)).returncode == 0  # 150 s
    return [json.loads(line) for line in path.read_text().splitlines()]


def replay(tmp_path, name: str, events: list[dict]) -> str:
    dsn = f"chdb://{tmp_path}/{name}"
    result = cli("replay", str(write(tmp_path / f"{name}.jsonl", events)), "--store", dsn,
                 "-q", "--batch", str(RATE // 2))
    assert result.returncode == 0, result.stderr
    return dsn


def ms(dsn: str, sql: str) -> list[int]:
    return [int(v) for v in query_scalar(dsn, sql).split(",")]


def test_a_clean_replay_never_leaves_normal(tmp_path, clean):
    dsn = replay(tmp_path, "clean", clean)
    assert query_scalar(dsn, "SELECT count() FROM mode_changes FINAL") == "0"
    assert query_scalar(dsn, "SELECT countIf(status = 'fail') FROM canary_results FINAL") \
        == "0"


def test_one_dark_unit_raises_its_own_silence_and_leaves_the_mode_normal(tmp_path, clean):
    start = clean[0]["event_time"]
    dark = [e for e in clean if not (e["source_id"] == "robot-005"
                                     and 60_000 <= e["event_time"] - start < 120_000)]
    dsn = replay(tmp_path, "dark", dark)
    assert query_scalar(dsn, "SELECT count() FROM mode_changes FINAL") == "0"
    last = ms(dsn, "SELECT toUnixTimestamp64Milli(max(event_time)) FROM decisions FINAL "
                   f"WHERE source_id = 'robot-005' AND toUnixTimestamp64Milli(event_time) "
                   f"< {start + 60_000}")[0]
    silence = ms(dsn, "SELECT toUnixTimestamp64Milli(min(detected_at)) FROM drift_events "
                      "FINAL WHERE signal = 'silence' AND source_id = 'robot-005'")[0]
    cadence = 1_000 * ROBOTS // RATE
    assert 0 < silence - last <= 3_000 + 10 * cadence + 250  # one freshness check late
    others = query_scalar(dsn, "SELECT count() FROM drift_events FINAL WHERE signal = "
                               "'silence' AND source_id != 'robot-005'")
    assert others == "0"


def test_half_the_fleet_cut_off_degrades_after_5_s_and_30_s_of_lag(tmp_path, clean):
    start = clean[0]["event_time"]
    cut = with_outage(clean, lambda source: int(source[-3:]) % 2 == 0, 40_000, 90_000)
    dsn = replay(tmp_path, "half", cut)
    reactive, conservative = ms(dsn, "SELECT toUnixTimestamp64Milli(minIf(at, to_mode = "
                                     "'REACTIVE_ONLY')), toUnixTimestamp64Milli(minIf(at, "
                                     "to_mode = 'CONSERVATIVE')) FROM mode_changes FINAL")
    assert 5_000 < reactive - (start + 40_000) <= 5_000 + 500
    assert 30_000 < conservative - (start + 40_000) <= 30_000 + 500


def test_a_3_sd_step_on_one_units_slow_motor_temperature_is_found_through_replay(tmp_path):
    """Not the simulator: 24 units' motor temperatures, mean-reverting (lag-1
    autocorrelation 0.85) at 5 Hz, each at its own level and spread; unit 7 steps up by
    3 sd at 400 s. Found within 160 s, its onset placed, and nothing else raised."""
    import numpy as np

    from benchmarks.detection import ar1
    rng = np.random.default_rng(21)
    hz, seconds, start = 5, 600, 1_767_225_600_000
    temps = ar1(rng, 24, hz * seconds, 0.85, "gauss")
    levels, spreads = rng.uniform(40, 70, 24), rng.uniform(0.5, 2.0, 24)
    temps = levels[:, None] + spreads[:, None] * temps
    temps[7, 400 * hz:] += 3 * spreads[7]
    events = [{"source_id": f"unit-{u:02d}", "event_time": start + i * 200,
               "arrival_time": start + i * 200 + 15, "seq": i,
               "values": {"motor_temp_c": round(float(temps[u, i]), 3)}}
              for i in range(hz * seconds) for u in range(24)]
    dsn = f"chdb://{tmp_path}/store"
    result = cli("replay", str(write(tmp_path / "temps.jsonl", events)), "--store", dsn,
                 "-q")
    assert result.returncode == 0, result.stderr
    found = query_scalar(dsn, "SELECT groupArray((signal, source_id, direction)), "
                              "toUnixTimestamp64Milli(min(detected_at)), "
                              "toUnixTimestamp64Milli(min(onset_time)), min(magnitude) "
                              "FROM drift_events FINAL WHERE magnitude != 0")
    alarms, detected, onset, magnitude = found.rsplit(",", 3)
    assert alarms.replace(" ", "") == "\"[('peer:motor_temp_c','unit-07','up')]\""
    assert 0 < int(detected) - (start + 400_000) <= 160_000
    assert abs(int(onset) - (start + 400_000)) <= 10_000
    assert 2.0 <= float(magnitude) <= 4.0
