from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from operators.errors import ConfigError, StoreBusy, StoreError, StoreUnavailable
from operators.records import DEAD_LETTER_COLUMNS, Rows
from sinks.clickhouse import merge_rows
from sinks.store import DDL_DIR, check_openable, normalize_dsn, open_store


def test_schema_has_the_design_columns_and_migration_is_idempotent(store):
    store.migrate()
    store.migrate()
    columns = [r[0] for r in store.query(
        "SELECT name FROM system.columns WHERE table = 'decisions' ORDER BY position")[1]]
    for name in ("decision_id", "trace_id", "source_id", "decision_type", "path", "action",
                 "score", "confidence", "model_version", "variant", "mode", "event_time",
                 "decided_at", "age_ms", "fresh", "latency_ms", "escalated", "reason"):
        assert name in columns
    assert {"decisions", "dead_letters", "drift_events", "mode_changes",
            "outcomes"} <= set(store.tables())


def test_a_store_migrated_by_these_schema_files_is_not_migrated_again(store, tmp_path):
    # every command opens the store: re-applying the whole schema cost each one about
    # 40 statements; a store records which schema files migrated it
    applied = []
    command = store.command
    store.command = lambda sql: applied.append(sql) or command(sql)
    try:
        store.migrate()
        assert applied == []
        store.command("DROP TABLE regrets")           # a table gone: migrated again
        applied.clear()
        store.migrate()
        assert any("CREATE TABLE IF NOT EXISTS regrets" in sql for sql in applied)
        assert "regrets" in store.tables()
        ddl = tmp_path / "ddl"                         # other schema files: migrated again
        ddl.mkdir()
        for path in DDL_DIR.glob("*.sql"):
            (ddl / path.name).write_text(path.read_text())
        (ddl / "999_more.sql").write_text("CREATE TABLE IF NOT EXISTS more_rows (x UInt8) "
                                          "ENGINE = MergeTree ORDER BY x;")
        applied.clear()
        store.migrate(ddl)
        assert "more_rows" in store.tables() and applied
        applied.clear()
        store.migrate(ddl)
        assert applied == []
    finally:
        del store.command
        store.command("DROP TABLE IF EXISTS more_rows")


def rows(n, start=0):
    return Rows("dead_letters", DEAD_LETTER_COLUMNS,
                [(f"id-{i}", 1_000, f"file:x:{i}", "bad", "{}", "t") for i in range(start, n)])


def test_identical_block_is_written_once_and_replays_count_once(store):
    store.insert(rows(100))
    store.insert(rows(100))                      # same block: deduplicated by token
    assert store.scalar("SELECT count() FROM dead_letters") == 100
    store.insert(rows(150, start=50))            # overlapping block: merged away by FINAL
    assert store.scalar("SELECT count() FROM dead_letters FINAL") == 150


def test_read_only_queries_refuse_writes(store):
    with pytest.raises(ConfigError, match="read-only"):
        store.query("DROP TABLE decisions", read_only=True)
    with pytest.raises(StoreError):
        store.query("SELECT * FROM no_such_table", read_only=True)
    for hidden in ("-- SELECT\nDROP TABLE decisions", "/* SELECT */ DROP TABLE decisions",
                   "/* a */ DROP TABLE decisions /* */ SELECT 1"):
        with pytest.raises(ConfigError, match="read-only"):
            store.query(hidden, read_only=True)
    # a panel's file starts with comments: pasted as it is, it runs
    assert store.query("-- title: x\n/* why */\nSELECT 1 AS one", read_only=True)[1] == [(1,)]


def test_read_only_is_enforced_by_the_store_not_only_by_the_statement_check(store, tmp_path):
    """Statements that start with SELECT and still write, read files or lift the limit."""
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read")
    for sneaky in ("SELECT 1 SETTINGS readonly = 0",
                   f"SELECT * FROM file('{secret}', 'LineAsString')",
                   "WITH 1 AS x SELECT x FROM system.one SETTINGS readonly = 0"):
        with pytest.raises(StoreError):
            store.query(sneaky, read_only=True)
    with pytest.raises(ConfigError, match="INTO OUTFILE"):
        store.query(f"SELECT 1 INTO OUTFILE '{tmp_path / 'out.csv'}'", read_only=True)
    assert not (tmp_path / "out.csv").exists()


def test_dsn_validation():
    assert normalize_dsn("chdb:///tmp/a/../b") == "chdb:///tmp/b"
    with pytest.raises(ConfigError, match="unknown scheme"):
        normalize_dsn("postgres://x")
    with pytest.raises(ConfigError, match="no host"):
        normalize_dsn("http://")


def test_a_second_embedded_path_in_one_process_is_a_clear_error(store, tmp_path):
    with pytest.raises(StoreUnavailable, match="one path per process"):
        open_store(f"chdb://{tmp_path}")


def test_a_store_open_elsewhere_is_named_by_its_holder_before_the_engine_loads(store, tmp_path):
    """What a cluster's parent checks before starting its processes: the engine's own
    lock on the store (held here by the ``store`` fixture's engine)."""
    with pytest.raises(StoreBusy, match=f"another process has it open .*PID: {os.getpid()}"):
        check_openable(store.dsn)
    check_openable(f"chdb://{tmp_path}/fresh")  # never opened: free
    check_openable(f"chdb://{tmp_path}/fresh")  # checking takes no lock of its own
    # held by a process that died without closing it (killed): its status file stays,
    # and its lock went with the process, so a restart may open the store
    died = subprocess.run([sys.executable, "-c", "import os, sys; from sinks.store import "
                           "open_store; open_store('chdb://' + sys.argv[1]); os._exit(0)",
                           str(tmp_path / "used")], cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, timeout=120)
    assert died.returncode == 0, died.stderr[-2000:]
    assert (tmp_path / "used" / "status").exists()
    check_openable(f"chdb://{tmp_path}/used")
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreUnavailable, match="cannot create store directory"):
        check_openable(f"chdb://{tmp_path}/file/store")


def test_unreachable_server_is_store_unavailable():
    with pytest.raises(StoreUnavailable, match="cannot reach ClickHouse"):
        open_store("http://default:@127.0.0.1:1/default")


def test_a_password_in_the_dsn_is_never_in_an_error():
    with pytest.raises(StoreUnavailable) as caught:
        open_store("http://ingest:Hunter2Secret@127.0.0.1:1/default?password=Hunter2Secret")
    assert "Hunter2Secret" not in str(caught.value) and "ingest:***@" in str(caught.value)
    with pytest.raises(ConfigError) as bad:
        normalize_dsn("ftp://ingest:Hunter2Secret@host/db")
    assert "Hunter2Secret" not in str(bad.value)


def test_the_dsn_can_come_from_a_secret_file(tmp_path, monkeypatch):
    secret = tmp_path / "store-dsn"
    secret.write_text(f"chdb://{tmp_path}/from-secret\n")
    monkeypatch.delenv("LUCIDSTREAM_STORE", raising=False)
    monkeypatch.setenv("LUCIDSTREAM_STORE_FILE", str(secret))
    assert normalize_dsn(None) == f"chdb://{tmp_path}/from-secret"
    monkeypatch.setenv("LUCIDSTREAM_STORE_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match=r"LUCIDSTREAM_STORE_FILE.*cannot read"):
        normalize_dsn(None)


def test_merge_rows_groups_per_table():
    merged = merge_rows([rows(2), Rows("x", ("a",), [(1,)]), rows(4, start=2)])
    assert [(m.table, m.count) for m in merged] == [("dead_letters", 4), ("x", 1)]


def test_the_decision_row_is_the_decisions_table(store):
    """:class:`Decision` is defined once: its fields are the table's columns, in order,
    and a field that may be None is exactly a Nullable column."""
    from operators.decision import Decision

    columns = store.query("SELECT name, type FROM system.columns WHERE database = "
                          "currentDatabase() AND table = 'decisions' ORDER BY position")[1]
    columns = [(name, kind) for name, kind in columns if name != "stored_at"]  # the store's
    assert tuple(name for name, _ in columns) == Decision._fields
    annotations = Decision.__annotations__
    nullable = {name for name, kind in columns if kind.startswith("Nullable")}
    assert nullable == {name for name in Decision._fields
                        if "None" in getattr(annotations[name], "__forward_arg__", "")}


_PART_REMOVAL = """
import os, sys, time
from operators.records import DEAD_LETTER_COLUMNS, Rows
from sinks.store import open_store

store = open_store("chdb://" + sys.argv[1])
# what the engine does after old_parts_lifetime (8 min), brought forward
store.command("ALTER TABLE dead_letters MODIFY SETTING old_parts_lifetime = 1, "
              "cleanup_delay_period = 1, cleanup_delay_period_random_add = 0")
for i in range(300):  # 300 parts, then one merged part and 300 outdated ones
    store.insert(Rows("dead_letters", DEAD_LETTER_COLUMNS,
                      [(f"id-{i}", 1_000, "file:x:1", "bad", "{}", "t")]))
store.command("OPTIMIZE TABLE dead_letters FINAL")
deadline = time.monotonic() + 30
while store.scalar("SELECT count() FROM system.parts WHERE table = 'dead_letters'") > 1:
    assert time.monotonic() < deadline, "the outdated parts were never removed"
    time.sleep(0.2)
print(len(os.listdir("/proc/self/task")))
"""


def test_removing_many_merged_away_parts_does_not_leave_a_hundred_threads(tmp_path):
    """The embedded engine runs in the flow's process: by default it removes 100 or
    more outdated parts on up to 128 pool threads and keeps them, and their memory, for
    good (a churn replay's RSS stepped up by 60 MB when it did). Fails without
    ``Store._tune_embedded_tables``."""
    import subprocess
    import sys
    from pathlib import Path

    done = subprocess.run([sys.executable, "-c", _PART_REMOVAL, str(tmp_path / "store")],
                          cwd=Path(__file__).resolve().parents[1], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) < 60


def test_a_process_with_the_embedded_store_open_that_aborts_ends(tmp_path):
    """Fails without ``_let_aborts_end_the_process``: the embedded engine's fatal-signal
    handler caught the abort and the process hung for good, holding the store's path
    (as a run Ctrl-C'd during an outage once did when Bytewax aborted)."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    aborting = ("import os, sys; from sinks.store import open_store; "
                "store = open_store('chdb://' + sys.argv[1]); store.scalar('SELECT 1'); "
                "os.abort()")
    done = subprocess.run([sys.executable, "-c", aborting, str(tmp_path / "store")],
                          cwd=Path(__file__).resolve().parents[1], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == -signal.SIGABRT, done.stderr[-2000:]


def test_every_embedded_table_merges_at_most_ten_parts_and_removes_on_one_thread(store):
    """Merge buffers and removal threads of the embedded engine are the flow's memory."""
    engines = store.query("SELECT name, engine_full FROM system.tables WHERE database = "
                          "currentDatabase() AND engine LIKE '%MergeTree'")[1]
    assert len(engines) >= 10
    for name, engine in engines:
        assert "max_parts_to_merge_at_once = 10" in engine, name
        assert "concurrent_part_removal_threshold = 1000000000" in engine, name


def test_every_table_the_flow_writes_is_inserted_as_arrow(store):
    """Each column the flow writes has an Arrow type, containers and nanosecond times
    included: its inserts are converted in C++, never value by value in Python (the
    driver's Native path), and a schema change that breaks that shows here."""
    from operators.canary import CANARY_COLUMNS
    from operators.escalation import ESCALATION_COLUMNS
    from operators.invariants import VIOLATION_COLUMNS
    from operators.records import (
        ALARM_COLUMNS,
        CONTROL_LOG_COLUMNS,
        DECISION_COLUMNS,
        MODE_CHANGE_COLUMNS,
        OUTCOME_COLUMNS,
        QUALITY_COLUMNS,
    )
    from operators.regret import REGRET_COLUMNS
    from sinks.tracing import OTEL_TRACE_COLUMNS

    written = {"decisions": DECISION_COLUMNS, "drift_events": ALARM_COLUMNS,
               "dead_letters": DEAD_LETTER_COLUMNS, "outcomes": OUTCOME_COLUMNS,
               "mode_changes": MODE_CHANGE_COLUMNS, "control_log": CONTROL_LOG_COLUMNS,
               "quality_metrics": QUALITY_COLUMNS, "regrets": REGRET_COLUMNS,
               "escalations": ESCALATION_COLUMNS, "canary_results": CANARY_COLUMNS,
               "invariant_violations": VIOLATION_COLUMNS, "otel_traces": OTEL_TRACE_COLUMNS}
    not_arrow = [table for table, columns in written.items()
                 if store._arrow_schema(Rows(table, columns, [])) is None]
    assert not_arrow == []


def test_containers_and_nanosecond_times_round_trip_through_arrow(store):
    store.command("CREATE TABLE arrow_kinds (at DateTime64(9), tags Map(LowCardinality(String), "
                  "String), hist Array(UInt64), names Array(LowCardinality(String))) "
                  "ENGINE = MergeTree ORDER BY at")
    row = (1_767_225_600_123_456_789, {"a": "1", "b": "x"}, [3, 0, 7], ["p", "q"])
    store.insert(Rows("arrow_kinds", ("at", "tags", "hist", "names"), [row]), dedup=False)
    got = store.query("SELECT toUnixTimestamp64Nano(at), tags, hist, names FROM arrow_kinds")[1]
    assert got == [row]
