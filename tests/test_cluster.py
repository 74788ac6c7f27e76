"""What a cluster's processes report to the one that records the run.

The whole path (two processes, the run recorded with both processes' counters) runs in
``tests/test_kafka.py``; these cases hold the reports themselves.
"""

from __future__ import annotations

import os
import subprocess
import threading

from flows.cluster import (
    REPORTS_PREFIX,
    ProcessReport,
    gather_reports,
    summed,
    sweep_stale_reports,
)
from flows.telemetry import TelemetrySnapshot


def _report(events: int, mode: str, cpu_s: float, rss: float) -> ProcessReport:
    snap = TelemetrySnapshot(10.0, events, events, 1, 0, 0, 0, 2, 5, 50, mode,
                             rows_written={"decisions": events})
    return ProcessReport(snap, cpu_s, rss)


def test_the_reports_of_every_process_add_up_to_the_cluster(tmp_path):
    own = tmp_path / "process-0.json"
    _report(600, "NORMAL", 3.0, 400.0).write(own)
    late = threading.Timer(0.3, _report(400, "CONSERVATIVE", 2.0, 500.0).write,
                           args=(tmp_path / "process-1.json",))
    late.start()  # the other process finishes a moment later: it is waited for
    snap, (cpu_s, rss) = summed(gather_reports(own, 2, timeout_s=30))
    late.join()
    assert (snap.events, snap.decisions, snap.stale, snap.alarms) == (1_000, 1_000, 2, 4)
    assert snap.rows_written == {"decisions": 1_000} and snap.mode == "CONSERVATIVE"
    assert (cpu_s, rss) == (5.0, 500.0)


def test_a_process_that_never_reports_is_named_and_left_out(tmp_path, capsys):
    own = tmp_path / "process-0.json"
    _report(600, "NORMAL", 3.0, 400.0).write(own)
    reports = gather_reports(own, 3, timeout_s=0.2)
    assert [r.snapshot.events for r in reports] == [600]
    assert "process 1 of the cluster reported no counters" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.partial"))  # written whole, then renamed


def test_the_reports_of_a_killed_cluster_are_swept_by_the_next_one(tmp_path):
    """A parent killed with SIGKILL leaves its report directory; the next cluster
    removes those whose parent is gone, and no other."""
    ended = subprocess.Popen(["true"])  # a process that has ended: its PID is free
    ended.wait()
    stale = tmp_path / f"{REPORTS_PREFIX}{ended.pid}-abc"
    running = tmp_path / f"{REPORTS_PREFIX}{os.getpid()}-def"
    other = tmp_path / "lucidstream-cluster-notapid"
    for path in (stale, running, other):
        path.mkdir()
        (path / "process-0.json").write_text("{}")
    assert sweep_stale_reports(tmp_path) == 1
    assert not stale.exists() and running.exists() and other.exists()
