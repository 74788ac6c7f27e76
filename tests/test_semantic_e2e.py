"""Drift, quality, outcomes and regrets through the real replay CLI and store."""

from __future__ import annotations

import json
import random

from operators.ids import decision_id
from tests.conftest import cli, query_scalar, with_outage

START = 1_767_225_600_000


def write(path, events):
    path.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    return path


def generic_stream(n=6_000, sources=5, shift_at=3_000, seed=1):
    """Events that carry only {"v": ...}; source s2's level shifts at its sample 3,000."""
    rng = random.Random(seed)
    events = []
    for i in range(n):
        t = START + i * 100
        for s in range(sources):
            level = 5.0 if (s == 2 and i >= shift_at) else 0.0
            events.append({"source_id": f"s{s}", "event_time": t, "arrival_time": t + 10,
                           "seq": i, "values": {"v": round(rng.gauss(level, 1), 4)}})
    return events


def test_drift_on_an_unseen_stream_is_found_with_its_source_and_signal(tmp_path):
    path = write(tmp_path / "v.jsonl", generic_stream())
    dsn = f"chdb://{tmp_path}/store"
    assert cli("replay", str(path), "--store", dsn, "-q").returncode == 0
    rows = query_scalar(dsn, "SELECT groupUniqArray(source_id), min(event_time) FROM "
                             "drift_events FINAL WHERE signal = 'value:v'")
    sources, first = rows.rsplit(",", 1)
    assert sources == "['s2']"
    # shifted at sample 3,000 (t = START + 300 s); found within 150 samples (15 s)
    assert "2026-01-01 00:05:0" in first or "2026-01-01 00:05:1" in first, first


def test_replaying_twice_gives_identical_alarms_and_quality_metrics(tmp_path):
    clean = tmp_path / "fleet.jsonl"
    assert cli("simulate", "--out", str(clean), "--events", "30000").returncode == 0
    snapshots = []
    for run in range(2):
        dsn = f"chdb://{tmp_path}/store{run}"
        assert cli("replay", str(clean), "--store", dsn, "-q").returncode == 0
        drift = query_scalar(dsn, "SELECT count(), sum(cityHash64(alarm_id, signal, "
                                  "source_id, detected_at, value)) FROM drift_events FINAL")
        quality = query_scalar(dsn, "SELECT count(), sum(cityHash64(metric_id, events, "
                                    "decisions, fast, slow, fallback, stale, confidence_hist, "
                                    "slow_agreed, drift_alarms, regrets)) "
                                    "FROM quality_metrics FINAL")
        totals = query_scalar(dsn, "SELECT sum(events), sum(decisions) FROM quality_metrics")
        snapshots.append((drift, quality, totals))
    assert snapshots[0] == snapshots[1]
    assert snapshots[0][2].startswith("30000,")  # every event counted in a window


def test_backlog_produces_regrets_and_a_clean_replay_almost_none(tmp_path):
    clean = tmp_path / "clean.jsonl"
    assert cli("simulate", "--out", str(clean), "--events", "30000", "--sources",
               "20", "--rate", "400").returncode == 0  # 75 s of simulated time
    events = [json.loads(line) for line in clean.read_text().splitlines()]
    dsn = f"chdb://{tmp_path}/clean"
    assert cli("replay", str(clean), "--store", dsn, "-q").returncode == 0
    regrets, changed = query_scalar(dsn, "SELECT count(), countIf(changed) FROM regrets FINAL"
                                    ).split(",")
    assert int(regrets) <= 0.001 * len(events) and changed == "0"

    # robots 0-4 are cut off from 20 s to 40 s; the backlog lands at once
    lines = with_outage(events, lambda source: source < "robot-005", 20_000, 40_000)
    assert len(lines) == len(events)
    dsn = f"chdb://{tmp_path}/backlog"
    assert cli("replay", str(write(tmp_path / "b.jsonl", lines)), "--store", dsn,
               "-q").returncode == 0
    changed = int(query_scalar(dsn, "SELECT countIf(changed) FROM regrets FINAL"))
    assert changed >= 100  # held robots decided 'hold' on stale data; on time, they moved
    rate = float(query_scalar(dsn, "SELECT sum(regrets_changed) / sum(decisions) "
                                   "FROM quality_metrics FINAL"))
    assert rate > 0


def test_outcomes_join_their_decisions_and_grade_the_model(tmp_path):
    clean = tmp_path / "clean.jsonl"
    assert cli("simulate", "--out", str(clean), "--events", "10000").returncode == 0
    events = [json.loads(line) for line in clean.read_text().splitlines()]
    outcomes = []
    for e in events[2_000:6_000]:
        did = decision_id(e["source_id"], "motion", e["seq"], e["event_time"], "")
        outcomes.append({"decision_id": did, "outcome": "needed_help",
                         "label": float(e["values"]["battery"] < 15),
                         "event_time": e["event_time"] + 500})
    outcomes.append({"decision_id": "no-such-decision", "outcome": "x", "label": 1,
                     "event_time": START})
    mixed = events[:6_000] + outcomes + events[6_000:]
    dsn = f"chdb://{tmp_path}/store"
    assert cli("replay", str(write(tmp_path / "m.jsonl", mixed)), "--store", dsn,
               "-q").returncode == 0
    labelled, accuracy = query_scalar(dsn, "SELECT sum(labelled), sum(correct) / "
                                           "sum(labelled) FROM quality_metrics FINAL").split(",")
    assert int(labelled) == 4_000
    assert float(accuracy) > 0.8
    assert int(query_scalar(dsn, "SELECT count() FROM outcomes FINAL")) == 4_001
    orphans = query_scalar(dsn, "SELECT count() FROM outcomes AS o LEFT ANTI JOIN "
                                "decisions AS d ON o.decision_id = d.decision_id")
    assert orphans == "1"


def test_strange_but_valid_streams_are_decided_without_warnings_or_nan(tmp_path):
    """Unicode names, 128-character IDs, 1e308 and 5e-324, mixed time formats and
    offsets, missing seq, heartbeats and idle sources, nested extra fields."""
    rng = random.Random(3)
    events = []
    for i in range(5_000):
        values = {}
        for _ in range(rng.randint(1, 5)):
            name = rng.choice(["v", "temp C", "λ", "x.y", "big", "tiny", f"f{rng.randint(0, 90)}"])
            values[name] = {"big": rng.choice([1e308, -1e308, 0.0]),
                            "tiny": rng.choice([5e-324, -1e-300, 0.0])}.get(
                name, rng.gauss(0, 1) * rng.choice([1, 1e6, 1e-6]))
        event = {"source_id": rng.choice(["ü-sensor ☃", "a" * 128, "s1", "s 3"]),
                 "event_time": rng.choice([START + i * 10, f"2026-01-01T02:00:{(i // 100) % 60:02d}"
                                           f".{i % 1000:03d}+02:00"]), "values": values}
        if rng.random() < 0.5:
            event["seq"] = i
        if rng.random() < 0.1:
            event["kind"] = rng.choice(["heartbeat", "idle", "alarm"])
        if rng.random() < 0.05:
            event["extra"] = {"nested": [1, {"a": None}]}
        events.append(event)
    dsn = f"chdb://{tmp_path}/store"
    result = cli("replay", str(write(tmp_path / "odd.jsonl", events)), "--store", dsn, "-q")
    assert result.returncode == 0 and result.stderr == "", result.stderr[-2000:]
    decided = sum(1 for e in events if e.get("kind") not in ("heartbeat", "idle"))
    assert int(query_scalar(dsn, "SELECT count() FROM decisions FINAL "
                                 "WHERE path IN ('fast', 'fallback')")) == decided
    assert query_scalar(dsn, "SELECT countIf(NOT isFinite(score)) FROM decisions") == "0"


def test_conservative_backlog_fills_the_escalation_queue_and_records_breaches(tmp_path):
    clean = tmp_path / "clean.jsonl"
    assert cli("simulate", "--out", str(clean), "--events", "40000", "--sources", "20",
               "--rate", "200").returncode == 0  # 200 s of simulated time
    events = [json.loads(line) for line in clean.read_text().splitlines()]
    # every robot is cut off from 40 s to 90 s; the backlog lands at once
    lines = with_outage(events, lambda source: True, 40_000, 90_000)
    dsn = f"chdb://{tmp_path}/store"
    assert cli("replay", str(write(tmp_path / "b.jsonl", lines)), "--store", dsn,
               "-q").returncode == 0
    escalated = int(query_scalar(dsn, "SELECT count() FROM decisions FINAL WHERE escalated"))
    assert escalated > 0
    assert int(query_scalar(dsn, "SELECT count() FROM escalations FINAL")) == escalated
    breached, early = query_scalar(dsn, "SELECT countIf(status = 'breached'), "
                                        "countIf(due_at < created_at) FROM escalations FINAL"
                                   ).split(",")
    assert int(breached) > 0 and early == "0"
    assert query_scalar(dsn, "SELECT count() FROM decisions FINAL WHERE mode = 'CONSERVATIVE' "
                             "AND NOT escalated AND path != 'canary'") == "0"

    first = query_scalar(dsn, "SELECT escalation_id FROM escalations FINAL "
                              "ORDER BY created_at, escalation_id LIMIT 1")
    created = query_scalar(dsn, f"SELECT created_at FROM escalations FINAL "
                                f"WHERE escalation_id = '{first}'")
    assert cli("escalations", "approve", first, "--who", "alice", "--store", dsn).returncode == 0
    again = cli("escalations", "approve", first, "--who", "alice", "--store", dsn)
    assert again.returncode == 0 and "already approved" in again.stdout  # idempotent
    refused = cli("escalations", "reject", first, "--store", dsn)
    assert refused.returncode == 1 and "answers are final" in refused.stderr
    state = query_scalar(dsn, "SELECT status, responder, created_at FROM escalations FINAL "
                              f"WHERE escalation_id = '{first}'")
    assert state == f"approved,alice,{created}"
