"""What a workload costs: cores, memory, storage and money, from measured figures.

The figures per event come from a store after a run (CPU and peak memory from its
``runs`` table, bytes per table from its own ``system.parts``) or, without a store,
from the latest benchmark run (``benchmarks/figures.json``, written by
``python -m benchmarks.costs``). Nothing here is a guess: every input is a
measurement, and every output says which.

>>> figures = Figures(source="example", cpu_us_per_event={"decide": 20.0, "decode": 5.0},
...                   peak_rss_mb=700.0, events_per_process_s=20_000.0,
...                   table_bytes_per_event={"decisions": (30.0, 200.0)},
...                   input_bytes_per_event=300.0)
>>> e = estimate(figures, rate=40_000, days=30, prices=Prices(), retention={"decisions": None})
>>> e.cores, e.processes, e.memory_mb
(1.0, 2, 1400.0)
>>> round(e.storage_gb["decisions"], 1)  # GB: 40,000/s x 30 days x 30 bytes
3110.4
"""

from __future__ import annotations

import json
import math
import resource
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from operators.errors import ConfigError

__all__ = ["BENCH_FIGURES", "Estimate", "Figures", "Prices", "estimate", "figures_from_store",
           "load_figures", "process_usage"]

BENCH_FIGURES = Path(__file__).resolve().parents[1] / "benchmarks" / "figures.json"
HOURS_PER_MONTH = 730.0  # 365 x 24 / 12
_GB = 1e9


@dataclass(frozen=True)
class Figures:
    """Measured costs of one input event, and where they were measured."""

    source: str
    cpu_us_per_event: Mapping[str, float]  # stage -> CPU microseconds per input event
    peak_rss_mb: float  # one process
    events_per_process_s: float  # what one process sustains (it uses one core at most)
    table_bytes_per_event: Mapping[str, tuple[float, float]]  # table -> (on disk, raw)
    input_bytes_per_event: float  # what is read from Kafka per event


@dataclass(frozen=True)
class Prices:
    """Unit prices; the defaults are examples (README), not advice."""

    vcpu_hour: float = 0.04
    gb_month: float = 0.10
    egress_gb: float = 0.01


@dataclass(frozen=True)
class Estimate:
    """Resources and monthly cost of ``rate`` events/s kept for ``days``."""

    rate: float
    days: float
    source: str
    cores: float
    cores_per_stage: dict[str, float]
    processes: int
    memory_mb: float
    storage_gb: dict[str, float]  # per table, after ``days`` under the retention in force
    kept_days: dict[str, float]  # per table: min(days, TTL)
    egress_gb_month: float
    monthly: dict[str, float]  # compute, storage, egress, total

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def estimate(figures: Figures, rate: float, days: float, prices: Prices,
             retention: Mapping[str, int | None]) -> Estimate:
    """Cores, processes, memory, storage and money for ``rate`` events/s.

    ``retention`` gives each table's TTL in seconds (``None``: kept for ever); a
    table stores ``min(days, TTL)`` of events.
    """
    if rate <= 0 or days <= 0:
        raise ConfigError("--rate and --days must be positive (events per second, days kept)")
    per_stage = {stage: rate * us / 1e6 for stage, us in figures.cpu_us_per_event.items()}
    cores = sum(per_stage.values())
    processes = max(1, math.ceil(rate / figures.events_per_process_s))
    storage: dict[str, float] = {}
    kept: dict[str, float] = {}
    for table, (on_disk, _raw) in figures.table_bytes_per_event.items():
        ttl = retention.get(table)
        kept_days = days if ttl is None else min(days, ttl / 86_400)
        kept[table] = kept_days
        storage[table] = rate * 86_400 * kept_days * on_disk / _GB
    egress = rate * figures.input_bytes_per_event * 3_600 * HOURS_PER_MONTH / _GB
    monthly = {"compute": cores * HOURS_PER_MONTH * prices.vcpu_hour,
               "storage": sum(storage.values()) * prices.gb_month,
               "egress": egress * prices.egress_gb}
    monthly["total"] = sum(monthly.values())
    return Estimate(rate, days, figures.source, cores, per_stage, processes,
                    processes * figures.peak_rss_mb, storage, kept, egress, monthly)


def load_figures(path: Path = BENCH_FIGURES) -> Figures:
    """The figures of the latest benchmark run."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the benchmark figures {path} ({exc}); run "
                          "python -m benchmarks.costs, or give --store after a run") from exc
    return Figures(
        source=f"benchmark run of {data['date']} ({data['machine']})",
        cpu_us_per_event=data["cpu_us_per_event"], peak_rss_mb=data["peak_rss_mb"],
        events_per_process_s=data["events_per_process_s"],
        table_bytes_per_event={t: (v[0], v[1]) for t, v in data["table_bytes_per_event"].items()},
        input_bytes_per_event=data["input_bytes_per_event"])


def figures_from_store(store: Any, input_bytes_per_event: float) -> Figures:
    """Figures measured by the runs a store holds: CPU and memory from ``runs``, bytes
    per event from ``system.parts`` over the events it decided or dead-lettered. The
    size of an input event is not stored: the caller gives it."""
    events = int(store.scalar("SELECT count() FROM decisions FINAL WHERE path IN "
                              "('fast', 'fallback')") or 0)
    events += int(store.scalar("SELECT count() FROM dead_letters FINAL") or 0)
    # a run's input: the events it decided and the lines it dead-lettered
    runs = store.query("SELECT sum(cpu_seconds), sum(events + dead_letters), "
                       "max(peak_rss_mb), sum(events + dead_letters) / sum(wall_seconds) "
                       "FROM runs FINAL WHERE cpu_seconds > 0")[1][0]
    if not events or not runs[1]:
        raise ConfigError(f"the store {store.safe_dsn} holds no measured run; run a flow "
                          "into it first (lucidstream replay/run --store ...), or leave out "
                          "--store to use the benchmark figures")
    cpu_s, run_events, rss, per_s = runs
    parts = store.query("SELECT table, sum(bytes_on_disk), sum(data_uncompressed_bytes) "
                        "FROM system.parts WHERE active AND database = currentDatabase() "
                        "GROUP BY table ORDER BY table")[1]
    return Figures(
        source=f"store {store.safe_dsn}: {int(run_events):,} events in its runs, "
               f"{events:,} stored",
        cpu_us_per_event={"whole process": cpu_s / run_events * 1e6},
        peak_rss_mb=float(rss), events_per_process_s=float(per_s),
        table_bytes_per_event={t: (disk / events, raw / events) for t, disk, raw in parts},
        input_bytes_per_event=input_bytes_per_event)


def process_usage() -> tuple[float, float]:
    """CPU seconds and peak RSS (MiB) of this process and the children it waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    return cpu, max(own.ru_maxrss, kids.ru_maxrss) / 1024
