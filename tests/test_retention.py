"""Retention: each group of tables keeps its rows for its TTL after they were stored.

Time passing is the one thing a test cannot cause: rows are aged by rewriting their
``stored_at`` (an ``ALTER ... UPDATE`` mutation) instead of waiting days. Everything
else is the real store, its real TTLs and a real merge (``OPTIMIZE ... FINAL``).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from operators.errors import ConfigError
from sinks.retention import Retention
from tests.conftest import ROOT, cli

_AGE_AND_COUNT = """
import json, sys
from sinks.retention import Retention
from sinks.store import open_store

dsn, mid_ms, spec, age = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "age"
store = open_store(dsn)
DECIDED = "path IN ('fast', 'fallback')"  # one row per input event
if age:  # the first half hour's rows, and every span, were stored two days ago
    for table, where in (("decisions", f"toUnixTimestamp64Milli(event_time) < {mid_ms}"),
                         ("dead_letters", "1"), ("otel_traces", "1")):
        store.command(f"ALTER TABLE {table} UPDATE stored_at = now() - INTERVAL 2 DAY "
                      f"WHERE {where} SETTINGS mutations_sync = 2")
if spec:
    store.apply_retention(Retention.parse(spec))
for table in ("decisions", "dead_letters", "otel_traces"):
    store.command(f"OPTIMIZE TABLE {table} FINAL")
print(json.dumps({
    "decisions": store.scalar(f"SELECT count() FROM decisions FINAL WHERE {DECIDED}"),
    "late_half": store.scalar(f"SELECT count() FROM decisions FINAL WHERE {DECIDED} "
                              f"AND toUnixTimestamp64Milli(event_time) >= {mid_ms}"),
    "dead_letters": store.scalar("SELECT count() FROM dead_letters FINAL"),
    "spans": store.scalar("SELECT count() FROM otel_traces"),
    "ttl": store.engines()["decisions"].split(" TTL ")[-1].split(" SETTINGS")[0],
}))
"""


def _age_and_count(dsn: str, mid_ms: int, spec: str, age: bool, env: dict | None = None
                   ) -> dict:
    import os

    done = subprocess.run([sys.executable, "-c", _AGE_AND_COUNT, dsn, str(mid_ms), spec,
                           "age" if age else "keep"], cwd=ROOT, capture_output=True,
                          text=True, timeout=180, env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_a_replayed_hour_keeps_only_what_each_groups_ttl_allows_once_merged(tmp_path):
    events = tmp_path / "hour.jsonl"
    assert cli("simulate", "--out", str(events), "--events", "18000", "--rate", "5",
               "--sources", "12").returncode == 0
    times = [json.loads(line)["event_time"] for line in events.read_text().splitlines()]
    assert max(times) - min(times) >= 3_500_000  # an hour of event time
    mid_ms = (min(times) + max(times)) // 2
    with events.open("a") as out:  # five dead letters: the alarms group
        out.write("not json\n" * 5)
    dsn = f"chdb://{tmp_path / 'store'}"
    run = cli("replay", str(events), "--store", dsn, "--quiet",
              env={"LUCIDSTREAM_TRACE_BUDGET": "1000"})
    assert run.returncode == 0, run.stderr[-2000:]

    before = _age_and_count(dsn, mid_ms, "", age=False)
    assert before["decisions"] == 18_000 and before["dead_letters"] == 5 and before["spans"] > 0
    assert before["ttl"] == "stored_at + toIntervalSecond(7776000)"  # the default, 90 days

    # a day for decisions and traces; alarms keep their default year
    after = _age_and_count(dsn, mid_ms, "decisions=1d,traces=1d", age=True)
    assert after["decisions"] == after["late_half"] == before["late_half"]
    assert 0 < after["decisions"] < before["decisions"]
    assert after["dead_letters"] == 5
    assert after["spans"] == 0

    # a longer TTL loses nothing, and stays in force for a process that names none
    longer = _age_and_count(dsn, mid_ms, "decisions=30d", age=False)
    assert longer["decisions"] == after["decisions"]
    again = _age_and_count(dsn, mid_ms, "", age=False, env={"LUCIDSTREAM_RETENTION": ""})
    assert again["ttl"] == "stored_at + toIntervalSecond(2592000)"

    shown = cli("retention", "--store", dsn)
    assert shown.returncode == 0, shown.stderr
    row = next(line for line in shown.stdout.splitlines() if " decisions " in line)
    assert row.split("│")[3].strip() == "30d" and int(row.split("│")[4].replace(",", "")) > 0


def test_retention_specs_are_checked_and_name_what_is_wrong(tmp_path):
    assert Retention.parse("decisions=12h").seconds_for("decisions") == 43_200
    assert Retention.parse("traces=off").seconds_for("otel_traces") is None
    with pytest.raises(ConfigError, match=r"unknown group 'trace'.*decisions, traces"):
        Retention.parse("trace=7d")
    for bad in ("decisions=7", "decisions=-1d", "decisions=0d", "decisions=1w"):
        with pytest.raises(ConfigError, match="not a duration"):
            Retention.parse(bad)
    unused = tmp_path / "store"
    failed = cli("retention", "--store", f"chdb://{unused}", "--set", "alarms=soon")
    assert failed.returncode == 1 and "'soon' is not a duration" in failed.stderr
    assert not unused.exists()  # refused before any store was opened or created
