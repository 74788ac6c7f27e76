"""The ``lucidstream`` command line: run, simulate, replay and query.

Built on click. Errors are one line on stderr and a non-zero exit (2 for
usage, 1 otherwise); no traceback unless ``LUCIDSTREAM_DEBUG=1``.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import time
from pathlib import Path
from types import ModuleType

import click
import orjson
from rich.console import Console
from rich.table import Table

from flows.config import RunConfig
from flows.pipeline import build_flow, make_source
from flows.runner import RunReport, execute
from flows.telemetry import Telemetry
from operators.errors import ConfigError, InputError, LucidstreamError
from sinks.store import open_store

FLOWS = {"fleet": "flows.fleet", "traffic": "flows.traffic"}

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

store_option = click.option(
    "--store", default=None, help="chdb:///abs/path or http(s)://user:pass@host:8123/db "
    "[env LUCIDSTREAM_STORE; default ./lucidstream-data]")
flow_option = click.option("--flow", "flow_name", default="fleet", show_default=True,
                           type=click.Choice(sorted(FLOWS)), help="which flow")
workers_option = click.option("--workers", "-w", default=1, show_default=True,
                              type=click.IntRange(min=1), help="Bytewax workers")
shards_option = click.option("--shards", default=4, show_default=True,
                             type=click.IntRange(min=1), help="decider shards")
quiet_option = click.option("--quiet", "-q", is_flag=True, help="no progress line")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def app() -> None:
    """Stream decisions with freshness, IDs and traces into ClickHouse."""


def _flow_module(name: str) -> ModuleType:
    if name not in FLOWS:
        raise ConfigError(f"unknown flow {name!r}; choose one of {', '.join(FLOWS)}")
    return importlib.import_module(FLOWS[name])


def _run(config: RunConfig, flow_name: str, workers: int, quiet: bool) -> None:
    module = _flow_module(flow_name)
    store = open_store(config.store)  # fail fast, one line, if the store is unreachable
    try:
        telemetry = Telemetry()
        flow = build_flow(module.make_spec(config),
                          make_source(config, module.make_generator), telemetry)
        report = execute(flow, telemetry, store, flow_name, config.input, workers,
                         progress=not quiet)
        _summary(report, config)
    finally:
        store.close()


def _summary(report: RunReport, config: RunConfig) -> None:
    s = report.snapshot
    table = Table(title=f"lucidstream run {report.run_id[:8]}", show_header=True)
    table.add_column("measure")
    table.add_column("this run", justify="right")
    table.add_column("store total", justify="right")
    rate = f"{s.events_per_s:,.0f}/s"
    table.add_row("events", f"{s.events:,}", "")
    table.add_row("throughput", rate, "")
    table.add_row("decisions", f"{s.decisions:,}", f"{report.totals['decisions']:,}")
    table.add_row("stale decisions", f"{s.stale:,} ({s.stale_pct:.1f}%)", "")
    table.add_row("escalated", f"{s.escalated:,}", "")
    table.add_row("dead letters", f"{s.dead_letters:,}", f"{report.totals['dead_letters']:,}")
    table.add_row("alarms", f"{s.alarms:,}", f"{report.totals['alarms']:,}")
    table.add_row("outcomes", f"{s.outcomes:,}", "")
    table.add_row("watermark lag now / max", f"{s.lag_ms:,} / {s.max_lag_ms:,} ms", "")
    table.add_row("mode", s.mode, "")
    table.add_row("wall time", f"{s.elapsed_s:.1f} s", "")
    out.print(table)
    out.print(f"store: {config.store}")


@app.command()
@click.option("--events", type=click.IntRange(min=1), help="stop after N events")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True),
              help="stop after S seconds")
@click.option("--sources", default=50, show_default=True, type=click.IntRange(min=1),
              help="simulated sources (robots)")
@click.option("--seed", default=7, show_default=True, type=int, help="simulator seed")
@click.option("--rate", default=5000.0, show_default=True, type=click.FloatRange(min=0),
              help="events/s in total; 0 = as fast as possible on the replay clock")
@click.option("--input", "input_", default="sim", show_default=True,
              help="'sim' or a JSONL file")
@store_option
@flow_option
@workers_option
@shards_option
@quiet_option
def run(events: int | None, duration: float | None, sources: int, seed: int, rate: float,
        input_: str, store: str | None, flow_name: str, workers: int, shards: int,
        quiet: bool) -> None:
    """Run a flow on the simulator (live, wall clock) or a file, until done or Ctrl-C."""
    config = RunConfig(store=store, input=input_, events=events, duration_s=duration,
                       sources=sources, rate=rate, seed=seed, shards=shards)
    _run(config, flow_name, workers, quiet)


@app.command()
@click.argument("file", type=click.Path(path_type=Path))
@store_option
@flow_option
@workers_option
@shards_option
@click.option("--batch", default=2000, show_default=True, type=click.IntRange(min=1),
              help="lines per batch")
@quiet_option
def replay(file: Path, store: str | None, flow_name: str, workers: int, shards: int,
           batch: int, quiet: bool) -> None:
    """Replay a JSONL file on the replay clock, as fast as it goes; deterministic."""
    if not file.is_file():
        raise InputError(f"input file {str(file)!r} does not exist or is not a file")
    config = RunConfig(store=store, input=str(file), replay=True, shards=shards,
                       batch_size=batch)
    _run(config, flow_name, workers, quiet)


@app.command()
@click.option("--out", "out_file", required=True, type=click.Path(path_type=Path),
              help="JSONL file to write")
@click.option("--events", default=20_000, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=7, show_default=True, type=int)
@click.option("--sources", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--rate", default=500.0, show_default=True, type=click.FloatRange(min=1),
              help="events/s of simulated time")
@flow_option
def simulate(out_file: Path, events: int, seed: int, sources: int, rate: float,
             flow_name: str) -> None:
    """Write simulator events (with arrival_time) to a JSONL file for replay."""
    module = _flow_module(flow_name)
    config = RunConfig(store=None, input="sim", replay=True, sources=sources, seed=seed,
                       rate=rate)
    generator = module.make_generator(config)
    start = time.perf_counter()
    written, tick = 0, 0
    try:
        handle = open(out_file, "wb")  # noqa: SIM115
    except OSError as exc:
        raise InputError(f"cannot write {str(out_file)!r}: {exc.strerror}") from None
    with handle:
        while written < events:
            base = 1_767_225_600_000 + int(tick * generator.period_ms)
            tick += 1
            for event in generator.tick(base)[: events - written]:
                handle.write(orjson.dumps(event) + b"\n")
                written += 1
    err.print(f"wrote {written:,} events from {sources} sources to {out_file} "
              f"in {time.perf_counter() - start:.1f} s")


@app.command()
@click.argument("sql")
@store_option
@click.option("--format", "fmt", default="table", show_default=True,
              type=click.Choice(["table", "csv", "json"]))
def query(sql: str, store: str | None, fmt: str) -> None:
    """Run a read-only query against the store and print the result."""
    with open_store(store) as handle:
        columns, rows = handle.query(sql, read_only=True)
    if fmt == "json":
        for row in rows:
            print(json.dumps(dict(zip(columns, row, strict=True)), default=str))
    elif fmt == "csv":
        import csv

        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)
    elif len(columns) == 1 and len(rows) == 1:
        print(rows[0][0])
    else:
        table = Table(*columns)
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        out.print(table)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: one-line errors, meaningful exit codes."""
    logging.basicConfig(level=os.environ.get("LUCIDSTREAM_LOG", "WARNING").upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # The driver logs connection failures itself; we report them once, on one line.
    for noisy in ("clickhouse_connect", "urllib3", "urllib3.connectionpool"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    try:
        result = app.main(args=argv, standalone_mode=False, prog_name="lucidstream")
        return result if isinstance(result, int) else 0
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.exceptions.Abort:
        err.print("lucidstream: interrupted")
        return 130
    except click.UsageError as usage:
        hint = f" (see: lucidstream {usage.ctx.command_path.split(' ', 1)[-1]} --help)" \
            if usage.ctx and " " in usage.ctx.command_path else " (see: lucidstream --help)"
        print(f"lucidstream: error: {usage.format_message()}{hint}", file=sys.stderr)
        return 2
    except click.ClickException as bad:
        print(f"lucidstream: error: {bad.format_message()}", file=sys.stderr)
        return 2
    except LucidstreamError as problem:
        if os.environ.get("LUCIDSTREAM_DEBUG"):
            raise
        print(f"lucidstream: error: {problem}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lucidstream: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
