"""``lucidstream cost``: what a workload needs and costs, from measured figures."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from flows.cost import Prices, estimate, figures_from_store, load_figures
from sinks.retention import Retention, ttl_in_force
from sinks.store import open_store

out = Console(soft_wrap=True)
_PRICES = Prices()


@click.command()
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), required=True,
              help="input events per second")
@click.option("--days", default=30.0, show_default=True,
              type=click.FloatRange(min=0, min_open=True), help="storage reached after D days")
@click.option("--price-vcpu-hour", default=_PRICES.vcpu_hour, show_default=True, type=float,
              help="price of one vCPU for an hour (an example, not advice)")
@click.option("--price-gb-month", default=_PRICES.gb_month, show_default=True, type=float,
              help="price of one GB of disk for a month")
@click.option("--egress-gb-price", default=_PRICES.egress_gb, show_default=True, type=float,
              help="price of one GB read from Kafka across the network")
@click.option("--store", default=None, help="measure from this store's runs and parts "
              "instead of the latest benchmark figures")
@click.option("--format", "fmt", default="table", show_default=True,
              type=click.Choice(["table", "json"]))
def cost(rate: float, days: float, price_vcpu_hour: float, price_gb_month: float,
         egress_gb_price: float, store: str | None, fmt: str) -> None:
    """Cores, memory, storage and monthly cost of RATE events/s.

    CPU per event of each stage, memory per process, bytes per event of each table
    and the size of an input event are measurements: of the runs in --store, or of
    the latest benchmark run (benchmarks/figures.json) without one. Storage is what
    D days leave under the TTLs in force (lucidstream retention).
    """
    figures = load_figures()
    if store:
        with open_store(store) as handle:
            figures = figures_from_store(handle, figures.input_bytes_per_event)
            retention = {t: ttl_in_force(e) for t, e in handle.engines().items()}
    else:
        in_force = Retention.from_env()
        retention = {t: in_force.seconds_for(t) for t in figures.table_bytes_per_event}
    result = estimate(figures, rate, days, Prices(price_vcpu_hour, price_gb_month,
                                                  egress_gb_price), retention)
    if fmt == "json":
        print(json.dumps(result.as_dict(), indent=2))
        return
    out.print(f"[bold]{rate:,.0f} events/s[/bold], storage after {days:g} days; figures "
              f"from the {result.source}")
    table = Table("what", "how much", "from")
    per_stage = ", ".join(f"{stage} {cores:.2f}" for stage, cores in
                          result.cores_per_stage.items())
    table.add_row("cores busy", f"{result.cores:.2f}", per_stage)
    table.add_row("processes", f"{result.processes}",
                  f"one sustains {figures.events_per_process_s:,.0f} events/s")
    table.add_row("memory", f"{result.memory_mb:,.0f} MB",
                  f"{figures.peak_rss_mb:,.0f} MB peak per process")
    for name, gb in sorted(result.storage_gb.items(), key=lambda i: -i[1]):
        on_disk, raw = figures.table_bytes_per_event[name]
        table.add_row(f"storage: {name}", f"{gb:,.2f} GB",
                      f"{on_disk:,.1f} B/event on disk ({raw:,.1f} raw), "
                      f"{result.kept_days[name]:g} days kept")
    table.add_row("storage, total", f"{sum(result.storage_gb.values()):,.2f} GB", "")
    table.add_row("Kafka egress", f"{result.egress_gb_month:,.1f} GB/month",
                  f"{figures.input_bytes_per_event:,.0f} B/event")
    for item in ("compute", "storage", "egress", "total"):
        table.add_row(f"monthly: {item}", f"{result.monthly[item]:,.2f}", "")
    out.print(table)
