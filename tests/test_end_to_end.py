"""The reference flow end to end: simulate, corrupt, replay (twice), count."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

from tests.conftest import ROOT, cli, query_scalar, with_outage

BAD_LINES = [
    "{not json",
    '{"event_time": 1, "values": {"v": 1}}',
    '{"source_id": "robot-x", "event_time": "later", "values": {"v": 1}}',
    '{"source_id": "robot-x", "event_time": 1, "values": {}}',
    '{"source_id": "robot-x", "event_time": 1, "values": {"v": "high"}}',
    "[1, 2, 3]",
    '{"source_id": "robot-x", "event_time": 1, "values": {"v": 1}, "seq": -3}',
]


def corrupted_file(tmp_path, events=20_000, bad_every=997):
    clean = tmp_path / "clean.jsonl"
    assert cli("simulate", "--out", str(clean), "--events", str(events), "--seed",
               "7").returncode == 0
    lines = clean.read_text().splitlines()
    rng = random.Random(1)
    out, bad = [], 0
    for i, line in enumerate(lines):
        out.append(line)
        if i % bad_every == 0:
            out.append(rng.choice(BAD_LINES))
            bad += 1
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(out) + "\n")
    return path, len(lines), bad


def test_replay_decides_every_valid_event_once_and_dead_letters_every_bad_line(tmp_path):
    path, valid, bad = corrupted_file(tmp_path)
    dsn = f"chdb://{tmp_path}/store"
    first = cli("replay", str(path), "--store", dsn, "--quiet")
    assert first.returncode == 0, first.stderr
    fast = "SELECT count() FROM decisions FINAL WHERE path IN ('fast','fallback')"
    assert int(query_scalar(dsn, fast)) == valid == 20_000
    assert int(query_scalar(dsn, "SELECT uniqExact(decision_id) FROM decisions "
                                 "WHERE path IN ('fast', 'fallback')")) == valid
    assert int(query_scalar(dsn, "SELECT count() FROM dead_letters FINAL")) == bad
    reasons = query_scalar(dsn, "SELECT groupUniqArray(splitByChar(':', reason)[1]) "
                                "FROM dead_letters")
    assert "invalid_json" in reasons and "missing_field" in reasons
    stale_marked_fresh = ("SELECT countIf(path IN ('fast', 'fallback') AND age_ms > 2000) + "
                          "countIf(path = 'slow' AND age_ms > 7000) FROM decisions WHERE fresh")
    assert int(query_scalar(dsn, stale_marked_fresh)) == 0

    snapshot = ("SELECT count(), sum(cityHash64(decision_id, action, path, mode, age_ms)) "
                "FROM decisions FINAL")
    before = query_scalar(dsn, snapshot)
    again = cli("replay", str(path), "--store", dsn, "--quiet")
    assert again.returncode == 0, again.stderr
    assert query_scalar(dsn, snapshot) == before           # same decisions, same content
    assert int(query_scalar(dsn, fast)) == valid
    assert int(query_scalar(dsn, "SELECT count() FROM dead_letters FINAL")) == bad
    # What the store promises after a replay: FINAL and uniqExact count each decision
    # once. The raw table may hold a replayed row twice until ClickHouse merges its
    # parts: the store writer merges whatever batches queue up while it writes, so a
    # second run's insert blocks (and their dedup tokens) need not match the first's.
    once = query_scalar(dsn, "SELECT count() FROM decisions FINAL")
    assert query_scalar(dsn, "SELECT uniqExact(decision_id) FROM decisions") == once
    assert int(query_scalar(dsn, "SELECT count() FROM decisions")) <= 2 * int(once)


def test_backlog_and_partition_show_as_lag_stale_decisions_and_alarms(tmp_path):
    """A group of robots is cut off for 20 s, then its backlog lands at once."""
    clean = tmp_path / "clean.jsonl"
    assert cli("simulate", "--out", str(clean), "--events", "30000", "--sources", "20",
               "--rate", "400").returncode == 0
    events = [json.loads(line) for line in clean.read_text().splitlines()]
    cut = {f"robot-{i:03d}" for i in range(5)}
    lines = [json.dumps(e) for e in with_outage(events, cut.__contains__, 20_000, 40_000)]
    path = tmp_path / "partition.jsonl"
    path.write_text("\n".join(lines) + "\n")
    dsn = f"chdb://{tmp_path}/store"
    result = cli("replay", str(path), "--store", dsn, "--quiet")
    assert result.returncode == 0, result.stderr
    silence = int(query_scalar(dsn, "SELECT uniqExact(source_id) FROM drift_events FINAL "
                                    "WHERE signal = 'silence'"))
    assert silence == len(cut)
    stale = int(query_scalar(dsn, "SELECT count() FROM decisions FINAL WHERE NOT fresh"))
    assert stale >= len(cut) * 10 * 18   # nearly the whole backlog was decided stale
    assert int(query_scalar(dsn, "SELECT count() FROM decisions FINAL WHERE NOT fresh "
                                 "AND action != 'hold'")) == 0
    modes = query_scalar(dsn, "SELECT groupUniqArray(to_mode) FROM mode_changes")
    assert "REACTIVE_ONLY" in modes


def test_two_bytewax_workers_make_the_same_decisions_as_one(tmp_path):
    path, valid, _ = corrupted_file(tmp_path, events=6_000)
    ids = {}
    for workers in (1, 2):
        dsn = f"chdb://{tmp_path}/w{workers}"
        env = {**os.environ, "LUCIDSTREAM_INPUT": str(path), "LUCIDSTREAM_STORE": dsn}
        run = subprocess.run([sys.executable, "-m", "bytewax.run", "flows.fleet:get_flow()",
                              "-w", str(workers)], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=240)
        assert run.returncode == 0, run.stderr[-2000:]
        ids[workers] = query_scalar(dsn, "SELECT count(), sum(cityHash64(decision_id)) "
                                         "FROM decisions FINAL WHERE path IN ('fast', 'fallback')")
    assert ids[1] == ids[2]
    assert ids[1].split(",")[0] == str(valid)


def test_traffic_flow_reuses_the_parts(tmp_path):
    path = tmp_path / "traffic.jsonl"
    assert cli("simulate", "--flow", "traffic", "--out", str(path), "--events", "3000",
               "--sources", "30").returncode == 0
    dsn = f"chdb://{tmp_path}/store"
    result = cli("replay", str(path), "--flow", "traffic", "--store", dsn, "--quiet")
    assert result.returncode == 0, result.stderr
    rows = query_scalar(dsn, "SELECT groupUniqArray(decision_type), count() "
                             "FROM decisions FINAL WHERE path IN ('fast', 'fallback')")
    assert rows == "['signal_timing'],3000"
    for folder in ("operators", "sinks"):
        for file in (ROOT / folder).glob("*.py"):
            assert "robot" not in file.read_text().lower(), file


def test_a_byte_order_mark_and_crlf_line_ends_are_accepted(tmp_path):
    path = tmp_path / "windows.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"source_id":"s","event_time":1767225600000,"values":{"v":1}}'
                     b'\r\n{"source_id":"s","event_time":1767225600100,"values":{"v":2}}\r\n')
    dsn = f"chdb://{tmp_path}/store"
    assert cli("replay", str(path), "--store", dsn, "-q").returncode == 0
    assert query_scalar(dsn, "SELECT count() FROM decisions "
                             "WHERE path IN ('fast', 'fallback')") == "2"
    assert query_scalar(dsn, "SELECT count() FROM dead_letters") == "0"


def test_traffic_loads_wander_about_each_loops_own_level():
    """The traffic simulator's loops keep a level a detector can be judged against: over
    20 minutes each loop's load stays about its typical one (a random walk pinned
    loops empty or jammed within a minute)."""
    import numpy as np

    from flows.traffic import RoadSensors

    road = RoadSensors(n=50, hz=10, seed=3)
    loads = np.array([[e["values"]["occupancy"] for e in road.tick(i * 100)]
                      for i in range(12_000)])
    drift = np.abs(loads.mean(axis=0) - road.typical)
    assert drift.max() < 0.1, drift.max()
    assert 0.04 < float(np.median(loads.std(axis=0))) < 0.12
    pinned = np.mean((loads <= 0.0) | (loads >= 1.0))
    assert pinned < 0.05, pinned
