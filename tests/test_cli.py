"""The command line as a user meets it: one-line errors, exit codes, determinism."""

from __future__ import annotations

import hashlib

import pytest

from tests.conftest import cli


def one_line_error(result):
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_bad_flag_is_one_line_and_exit_2():
    result = cli("run", "--bogus")
    assert result.returncode == 2
    assert "--bogus" in one_line_error(result)


def test_missing_file_is_one_line_and_exit_1(tmp_path):
    result = cli("replay", str(tmp_path / "nope.jsonl"), "--store", f"chdb://{tmp_path}/s")
    assert result.returncode == 1
    assert "does not exist" in one_line_error(result)


def test_unreachable_store_is_one_line_and_exit_1(tmp_path):
    result = cli("run", "--events", "10", "--store", "http://default:@127.0.0.1:1/default")
    assert result.returncode == 1
    assert "cannot reach ClickHouse" in one_line_error(result)


def test_query_refuses_writes(tmp_path):
    result = cli("query", "DROP TABLE decisions", "--store", f"chdb://{tmp_path}/s")
    assert result.returncode == 1
    assert "read-only" in one_line_error(result)


def test_a_panels_file_pasted_as_sql_runs(tmp_path):
    """Its text starts with ``--``, which a CLI parser would take for an option."""
    from tests.conftest import ROOT

    sql = (ROOT / "infra/dashboards/stale_rate.sql").read_text()
    result = cli("query", sql, "--store", f"chdb://{tmp_path}/s")
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "(no rows)\n")


def test_simulate_is_deterministic_for_a_seed(tmp_path):
    digests = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        out = tmp_path / f"{name}.jsonl"
        assert cli("simulate", "--out", str(out), "--events", "500", "--seed",
                   str(seed)).returncode == 0
        digests.append(hashlib.sha256(out.read_bytes()).hexdigest())
        assert len(out.read_text().splitlines()) == 500
    assert digests[0] == digests[1] != digests[2]


def test_the_clock_follows_the_source_unless_set():
    from flows.config import RunConfig

    def replay(**env: str) -> bool | None:
        return RunConfig.from_env({f"LUCIDSTREAM_{k}": v for k, v in env.items()}).replay

    assert replay(INPUT="kafka", KAFKA="127.0.0.1:9092") is False  # live: wall clock
    assert replay(INPUT="sim") is False
    assert replay(INPUT="sim", RATE="0") is True                     # as fast as it goes
    assert replay(INPUT=__file__) is True                             # a file replays
    assert replay(INPUT="kafka", KAFKA="127.0.0.1:9092", REPLAY="1") is True


def test_the_flow_sets_the_garbage_collector_unless_told_not_to(tmp_path, monkeypatch):
    import gc

    from flows import fleet
    from flows.config import RunConfig
    from flows.gctune import TUNED
    from operators.errors import ConfigError

    saved = gc.get_threshold()
    data = tmp_path / "e.jsonl"
    data.write_text('{"source_id": "s", "event_time": 0, "values": {"v": 1}}\n')
    try:
        gc.set_threshold(700, 10, 10)
        monkeypatch.setenv("LUCIDSTREAM_GC", "default")
        fleet.get_flow(RunConfig(store=f"chdb://{tmp_path}/a", input=str(data)))
        assert gc.get_threshold() == (700, 10, 10)
        monkeypatch.delenv("LUCIDSTREAM_GC")
        fleet.get_flow(RunConfig(store=f"chdb://{tmp_path}/b", input=str(data)))
        assert gc.get_threshold() == TUNED and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*saved)
    monkeypatch.setenv("LUCIDSTREAM_GC", "lots")
    with pytest.raises(ConfigError, match="LUCIDSTREAM_GC='lots': use tuned, default"):
        RunConfig(input=str(data))
    result = cli("run", "--source", str(data), "--store", f"chdb://{tmp_path}/c",
                 env={"LUCIDSTREAM_GC": "0,0,0"})
    assert result.returncode != 0 and "thresholds must be at least 1" in result.stderr


def test_sql_looking_cli_arguments_are_values_not_sql(tmp_path):
    hostile = "x' OR '1'='1'; DROP TABLE decisions; -- {id:String}\x1b[31mred\u202e"
    store = f"chdb://{tmp_path}/s"
    traced = cli("trace", hostile, "--store", store)
    assert traced.returncode == 1 and "no trace for decision" in traced.stderr
    answered = cli("escalations", "approve", hostile, "--store", store, "--who", hostile)
    assert answered.returncode == 1 and "no escalation" in answered.stderr
    tables = cli("query", "SELECT count() FROM system.tables WHERE database = "
                 "currentDatabase() AND name = 'decisions'", "--store", store,
                 "--format", "csv")
    assert tables.stdout.strip().splitlines()[-1] == "1"  # nothing was dropped


def test_kafka_settings_from_the_environment_reach_librdkafka(tmp_path):
    """LUCIDSTREAM_KAFKA_OPTS keeps secrets off the command line; a setting librdkafka
    rejects is one line naming where it came from."""
    bad = cli("run", "--source", "kafka", "--kafka", "127.0.0.1:1", "--store",
              f"chdb://{tmp_path}/s", env={"LUCIDSTREAM_KAFKA_OPTS": "no.such.setting=1"})
    assert bad.returncode == 1
    assert "no.such.setting" in bad.stderr and "LUCIDSTREAM_KAFKA_OPTS" in bad.stderr
    assert "Traceback" not in bad.stderr
