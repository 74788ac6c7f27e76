"""Shared fixtures. chdb admits one store path per process, so in-process tests
share one session store and clear its tables; end-to-end tests run the real CLI
in subprocesses, each with its own store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sinks.store import Store, close_all, open_store

ROOT = Path(__file__).resolve().parents[1]
TABLES = ("decisions", "dead_letters", "drift_events", "mode_changes", "outcomes", "runs")


@pytest.fixture(scope="session")
def session_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    store = open_store("chdb://" + str(tmp_path_factory.mktemp("store")))
    yield store
    close_all()


@pytest.fixture()
def store(session_store: Store) -> Store:
    for table in TABLES:
        session_store.command(f"TRUNCATE TABLE IF EXISTS {table}")
    return session_store


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 240
        ) -> subprocess.CompletedProcess[str]:
    """Run ``lucidstream ARGS`` in a fresh process, as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def query_scalar(dsn: str, sql: str) -> str:
    """The first row of ``sql`` as CSV text (one value: just the value)."""
    result = cli("query", sql, "--store", dsn, "--format", "csv")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[1]


def with_outage(events: list[dict], cut, from_ms: int, to_ms: int) -> list[dict]:
    """``events`` as if the sources ``cut(source_id)`` selects were partitioned from
    ``from_ms`` to ``to_ms`` after the first event: their events in that span are held
    back and arrive all at once, in order, with the first event after the outage."""
    start = events[0]["event_time"]
    out, held = [], []
    for e in events:
        offset = e["event_time"] - start
        if cut(e["source_id"]) and from_ms <= offset < to_ms:
            held.append(e)
            continue
        if offset >= to_ms and held:
            for h in held:
                out.append({**h, "arrival_time": e["arrival_time"]})
            held = []
        out.append(e)
    assert not held, "the outage must end before the events do"
    return out
