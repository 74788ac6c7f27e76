"""The embedded engine's threads run at a lower CPU priority than the flow's.

Checked in a fresh process with a real embedded store: lowering the engine's
threads there would lower them in the test session's own store as well.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from flows.config import RunConfig
from operators.errors import ConfigError
from sinks.enginethreads import EngineThreads
from tests.conftest import ROOT, cli

_PROBE = textwrap.dedent("""
    import json, os, sys, threading
    from operators.records import Rows
    from sinks.enginethreads import ENGINE_THREAD_NAMES, EngineThreads
    from sinks.store import open_store

    def threads():
        out = {}
        for tid in os.listdir("/proc/self/task"):
            try:
                name = open(f"/proc/self/task/{tid}/comm").read().strip()
                out[tid] = (name, os.getpriority(os.PRIO_PROCESS, int(tid)))
            except OSError:
                pass
        return out

    store = open_store("chdb://" + sys.argv[1])
    store.migrate()
    store.insert(Rows("outcomes", ("decision_id", "outcome", "label", "event_time",
                                   "received_at", "origin"), [("d", "ok", 1.0, 0, 0, "t")]))
    writer = threading.Thread(target=threading.Event().wait, args=(5,), daemon=True)
    writer.start()  # a Python thread, as the store's writer is
    before = threads()
    lowered = EngineThreads(nice=10).lower()
    after = threads()
    print(json.dumps({"lowered": lowered, "before": before, "after": after,
                      "python": [str(t.native_id) for t in threading.enumerate()],
                      "engine": ENGINE_THREAD_NAMES}))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread priorities: /proc")
def test_the_engine_threads_run_lower_and_python_threads_keep_their_priority(tmp_path):
    done = subprocess.run([sys.executable, "-c", _PROBE, str(tmp_path / "store")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    before, after, engine = found["before"], found["after"], tuple(found["engine"])
    assert found["lowered"] > 0
    seen = 0
    for tid, (name, nice) in after.items():
        if tid not in before:
            continue  # started after the look: the next one lowers it
        was = before[tid][1]
        if tid in found["python"]:
            assert nice == was, f"Python thread {tid} ({name}) moved from {was} to {nice}"
        elif name.startswith(engine):
            assert nice == min(19, was + 10), f"engine thread {name} at {nice}, was {was}"
            seen += 1
    assert 0 < seen <= found["lowered"]  # (a pool thread may end in between)


def test_nice_zero_leaves_every_thread_alone_and_a_bad_value_is_refused():
    assert EngineThreads(nice=0).lower() == 0
    with pytest.raises(ConfigError, match=r"use 0 .* to 19"):
        EngineThreads(nice=20)
    with pytest.raises(ConfigError, match="engine nice -1"):
        RunConfig(store="chdb:///tmp/x", engine_nice=-1)


def test_without_proc_nothing_is_lowered_and_it_stops_looking(tmp_path):
    threads = EngineThreads(nice=10, every_s=0.0, tasks=str(tmp_path / "no-proc"))
    assert threads.lower() == 0
    assert threads.nice == 0  # given up: the next calls cost nothing


def test_the_cli_refuses_a_nice_value_out_of_range():
    result = cli("run", "--events", "1", "--engine-nice", "25", "--store", "chdb:///tmp/x")
    assert result.returncode != 0
    assert "--engine-nice" in result.stderr and "0<=x<=19" in result.stderr
