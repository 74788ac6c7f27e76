"""The benchmark suite runs end to end at a small scale and reports every figure.

Its numbers are not checked here (speed is measured by ``make bench``, never in
tests); what is checked is that each case runs, decides every event it was given,
and that the report holds what RESULTS.md quotes.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_benchmarks_run_every_case_and_report(tmp_path):
    out = tmp_path / "results.json"
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--events", "3000", "--rounds", "1",
         "--live-rate", "3000", "--skip", "cluster,live_half,state", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(out.read_text())
    for case in ("floor", "naive", "full", "full_small", "kafka", "live"):
        assert results[case]["events_per_s"] > 0, case
        assert results[case]["peak_rss_mb"] > 0, case
    assert results["full_small"]["events"] == 300
    assert results["kafka"]["broker_cpu_s"] >= 0
    # the file and the Kafka replay decide the same job, and are compared in turns
    assert results["full"]["decided"] == results["kafka"]["decided"] == 3000
    assert len(results["ratios"]["kafka/full per round"]) == 1
    live = results["live"]
    assert live["decisions"] == 3000  # every produced event was decided and stored
    assert 0 <= live["p50_ms"] <= live["p99_ms"] <= live["max_ms"]
    assert live["p99_ms_per_10s"], "the per-window p99 is missing"
    assert results["ratios"]["full/floor"] > 0
    assert results["machine"]["cores"]
    assert "full/naive" in run.stdout and "event-to-decision latency" in run.stdout
    floor = results["live_floor"]  # the broker's and producer's share, without the flow
    assert floor["messages"] == 3000 and 0 <= floor["p50_ms"] <= floor["p99_ms"]
    assert "bare consumer" in run.stdout
