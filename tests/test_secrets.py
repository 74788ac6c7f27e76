"""Credentials never leave the settings they were given in.

A full run reads Kafka with a SASL password in ``LUCIDSTREAM_KAFKA_OPTS`` and debug
logging on, and everything it printed, logged and stored (every table, the traces
among them) is searched for the password. A store DSN with a password is refused by,
or unreachable for, every command that takes one, and no output shows it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from flows.broker import broker_for_tests, free_port
from tests.conftest import ROOT, cli

SECRET = "Hunter2-sekr1t-Pw"

DUMP = """
import sys, clickhouse_connect
client = clickhouse_connect.get_client(dsn=sys.argv[1])
tables = client.query("SELECT name FROM system.tables WHERE database = currentDatabase()"
                      ).result_rows
for (table,) in tables:
    print("==", table)
    print(client.raw_query(f"SELECT * FROM `{table}` FORMAT TSV").decode(errors="replace"))
"""


@pytest.mark.kafka
def test_a_kafka_password_is_in_no_output_log_row_or_span(tmp_path):
    """Fails if the run summary, a log line or a stored row prints the Kafka settings."""
    broker = broker_for_tests()
    try:
        topic, dsn = "secrets", f"chdb://{tmp_path}/store"
        made = cli("simulate", "--kafka", broker.bootstrap, "--topic", topic,
                   "--events", "3000", "--partitions", "2")
        assert made.returncode == 0, made.stderr
        opts = f"sasl.username=ingest;sasl.password={SECRET};client.id=secrets-test"
        env = {"LUCIDSTREAM_KAFKA_OPTS": opts, "LUCIDSTREAM_LOG": "DEBUG"}
        run = cli("run", "--source", "kafka", "--kafka", broker.bootstrap, "--topic", topic,
                  "--store", dsn, "--stop-at-end", env=env)
    finally:
        broker.stop()
    assert run.returncode == 0, run.stderr[-2000:]
    assert "decisions" in run.stdout and "event=" in run.stderr  # it did run and log
    dump = subprocess.run([sys.executable, "-c", DUMP, dsn], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert dump.returncode == 0, dump.stderr
    assert "== otel_traces" in dump.stdout and "== decisions" in dump.stdout
    assert dump.stdout.count("\n") > 3000  # the decisions are there to be searched
    for name, text in (("stdout", run.stdout), ("stderr", run.stderr),
                       ("the store", dump.stdout)):
        assert SECRET not in text, f"the Kafka password is in {name}"


@pytest.mark.parametrize("command", [
    ("run", "--source", "sim", "--events", "100"),
    ("query", "SELECT 1"),
    ("escalations", "list"),
    ("trace", "0" * 32),
    ("dashboard", "--port", "0"),
])
def test_a_store_password_is_in_no_output_when_the_store_fails(command):
    """Fails if an error message shows the DSN as given (sinks.store.redact)."""
    dsn = f"http://ingest:{SECRET}@127.0.0.1:{free_port()}/default?password={SECRET}"
    result = cli(*command, "--store", dsn, env={"LUCIDSTREAM_LOG": "DEBUG"})
    assert result.returncode != 0
    assert "ingest:***@" in result.stdout + result.stderr
    assert SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize("dsn", [f"chdb://ingest:{SECRET}@/tmp/store",
                                 f"chdb:///tmp/store?password={SECRET}"])
def test_the_embedded_store_refuses_credentials_without_showing_them(dsn):
    """The embedded store has no users: a DSN that gives it a password is a mistake,
    said without echoing the password (it would otherwise name a directory)."""
    result = cli("query", "SELECT 1", "--store", dsn)
    assert result.returncode != 0 and "takes no credentials" in result.stderr
    assert SECRET not in result.stdout + result.stderr
