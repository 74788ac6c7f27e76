"""``lucidstream cost``: its arithmetic checked against a run's own measured counts."""

from __future__ import annotations

import json

import pytest

from tests.conftest import cli, query_scalar


@pytest.fixture(scope="module")
def measured_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp = tmp_path_factory.mktemp("cost")
    events = tmp / "events.jsonl"
    assert cli("simulate", "--out", str(events), "--events", "20000").returncode == 0
    with events.open("a") as out:
        out.write("{broken\n" * 3)
    dsn = f"chdb://{tmp / 'store'}"
    run = cli("replay", str(events), "--store", dsn, "--quiet")
    assert run.returncode == 0, run.stderr[-2000:]
    return dsn


def test_the_estimate_is_the_runs_measured_costs_times_the_rate(measured_store):
    dsn = measured_store
    done = cli("cost", "--rate", "1000", "--days", "30", "--store", dsn, "--price-vcpu-hour",
               "0.05", "--price-gb-month", "0.2", "--egress-gb-price", "0.02", "--format",
               "json")
    assert done.returncode == 0, done.stderr
    est = json.loads(done.stdout)

    cpu, run_events, rss = (float(v) for v in query_scalar(
        dsn, "SELECT sum(cpu_seconds), sum(events + dead_letters), max(peak_rss_mb) "
             "FROM runs FINAL").split(","))
    assert run_events == 20_003 and cpu > 1 and rss > 100  # the process measured itself
    stored = int(query_scalar(dsn, "SELECT count() FROM decisions FINAL WHERE path IN "
                                   "('fast', 'fallback')"))
    stored += int(query_scalar(dsn, "SELECT count() FROM dead_letters FINAL"))
    assert stored == 20_003
    assert est["cores"] == pytest.approx(1000 * cpu / run_events)
    assert est["memory_mb"] == pytest.approx(est["processes"] * rss)

    for table, days in (("decisions", 30), ("otel_traces", 7), ("dead_letters", 30)):
        on_disk = float(query_scalar(dsn, "SELECT sum(bytes_on_disk) FROM system.parts WHERE "
                                          f"active AND table = '{table}'"))
        assert est["kept_days"][table] == days  # traces: the 7-day TTL in force
        assert est["storage_gb"][table] == pytest.approx(
            1000 * 86_400 * days * on_disk / stored / 1e9)
    assert est["monthly"]["compute"] == pytest.approx(est["cores"] * 730 * 0.05)
    assert est["monthly"]["storage"] == pytest.approx(sum(est["storage_gb"].values()) * 0.2)
    assert est["monthly"]["total"] == pytest.approx(
        est["monthly"]["compute"] + est["monthly"]["storage"] + est["egress_gb_month"] * 0.02)


def test_a_fresh_clone_estimates_from_the_benchmark_figures():
    done = cli("cost", "--rate", "100000", "--days", "30")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "figures from the benchmark run of" in text
    for line in ("cores busy", "processes", "memory", "storage, total", "Kafka egress",
                 "monthly: total"):
        assert line in text


def test_an_empty_store_is_a_clear_error(tmp_path):
    done = cli("cost", "--rate", "10", "--store", f"chdb://{tmp_path / 'empty'}")
    assert done.returncode == 1
    assert "holds no measured run" in done.stderr and "--store" in done.stderr


def test_a_run_records_its_insert_and_inference_latency(measured_store):
    row = query_scalar(measured_store, "SELECT sum(events), sum(inserts), "
                       "max(insert_ms_mean), sum(inference_batches), max(inference_ms_mean), "
                       "max(inference_us_per_event), sum(rows_inserted), max(rss_mb) "
                       "FROM pipeline_metrics FINAL")
    events, inserts, insert_ms, batches, inference_ms, per_event, rows, rss = (
        float(v) for v in row.split(","))
    assert events == 20_000  # every interval, the last one too
    assert inserts > 0 and insert_ms > 0 and rows >= 20_000
    assert batches > 0 and inference_ms > 0 and 0 < per_event < inference_ms * 1000
    assert rss > 100
