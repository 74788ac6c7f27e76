"""The golden replay: 200,000 fleet events with a partition, a step and bad lines,
and what the decision path made of them (``tests/golden/replay.json``).

The recorded outcome is a digest of every decision's (ID, action, path, fresh, mode)
but the slow path's (listed one by one),
of every alarm's (source, signal, detected at) and of every dead letter, the mode
changes, and counts by kind, so that a difference can be named. Re-record, when a
change of decisions is intended and explained, with::

    python -m tests.golden record
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from tests.conftest import cli
from tests.test_semantic_e2e import write

GOLDEN = Path(__file__).with_name("golden") / "replay.json"
EVENTS, SOURCES, RATE = 200_000, 50, 2_500  # 50 Hz a robot: 80 s of event time

# Each row: what (a table, or counts by kind) and its value. A digest is a sum of row
# hashes: independent of order, and any changed row changes it.
QUERY = " UNION ALL ".join([
    "SELECT 'decisions' AS what, toString((count(), sum(cityHash64(decision_id, action, "
    "path, fresh, mode)))) AS value FROM decisions FINAL WHERE path != 'slow'",
    # the slow path's few hundred, one by one: (ID, action, fresh, mode, rejected)
    "SELECT 'slow', toString(groupArray(k)) FROM (SELECT (decision_id, action, fresh, mode, "
    "position(reason, 'rejected: decided against') > 0) AS k FROM decisions FINAL WHERE "
    "path = 'slow' ORDER BY k)",
    "SELECT 'alarms', toString((count(), sum(cityHash64(source_id, signal, detected_at)))) "
    "FROM drift_events FINAL",
    "SELECT 'dead_letters', toString((count(), sum(cityHash64(splitByChar(':', origin)[-1], "
    "reason)))) FROM dead_letters FINAL",  # the line, not the file's path
    "SELECT 'mode_changes', toString(groupArray((toUnixTimestamp64Milli(at), from_mode, "
    "to_mode, trigger))) FROM (SELECT * FROM mode_changes FINAL ORDER BY at, to_mode)",
    "SELECT 'decisions_by_kind', toString(groupArray(k)) FROM (SELECT (path, action, fresh, "
    "mode, count()) AS k FROM decisions FINAL GROUP BY path, action, fresh, mode ORDER BY k)",
    "SELECT 'alarms_by_signal', toString(groupArray(k)) FROM (SELECT (signal, count()) AS k "
    "FROM drift_events FINAL GROUP BY signal ORDER BY k)",
])


def make_input(directory: Path) -> Path:
    """The fleet's clean stream, then: a third of the units cut off from 20 s to 45 s
    (their events arrive late, at once), robot-007's motor temperature 15 degrees up
    from 50 s, and five lines that break the contract."""
    clean = directory / "clean.jsonl"
    made = cli("simulate", "--out", str(clean), "--events", str(EVENTS), "--sources",
               str(SOURCES), "--rate", str(RATE), "--seed", "11")
    assert made.returncode == 0, made.stderr
    events = [json.loads(line) for line in clean.read_text().splitlines()]
    start = events[0]["event_time"]
    for e in events:
        if e["source_id"] == "robot-007" and e["event_time"] - start >= 50_000:
            e["values"]["motor_temp_c"] = round(e["values"]["motor_temp_c"] + 15.0, 2)
    from tests.conftest import with_outage
    events = with_outage(events, lambda s: int(s[-3:]) % 3 == 0, 20_000, 45_000)
    path = write(directory / "golden.jsonl", events)
    with path.open("a") as out:
        out.write('{"source_id": "robot-001"}\n')
        out.write("not json\n")
        out.write('{"source_id": "robot-002", "event_time": 1, "values": {"x": true}}\n')
        out.write('{"source_id": "", "event_time": 1, "values": {"x": 1}}\n')
        out.write('{"source_id": "robot-003", "event_time": "yesterday", "values": {"x": 1}}\n')
    return path


def outcome(dsn: str) -> dict[str, str]:
    """What the store holds after the golden replay: digests and counts by kind."""
    result = cli("query", QUERY, "--store", dsn, "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = (json.loads(line) for line in result.stdout.splitlines())
    return {row["what"]: row["value"] for row in rows}


def replay(directory: Path, *extra: str) -> dict:
    """Replay the golden input into a fresh store under ``directory``; its outcome."""
    dsn = f"chdb://{directory}/store"
    done = cli("replay", str(make_input(directory)), "--store", dsn, "-q", *extra,
               timeout=600)
    assert done.returncode == 0, done.stderr
    return outcome(dsn)


if __name__ == "__main__" and sys.argv[1:] == ["record"]:
    with tempfile.TemporaryDirectory() as tmp:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(replay(Path(tmp)), indent=1) + "\n")
    print(f"recorded {GOLDEN}")
