"""The ``lucidstream`` command line: run, simulate, replay and query.

Built on click. Errors are one line on stderr and a non-zero exit (2 for
usage, 1 otherwise); no traceback unless ``LUCIDSTREAM_DEBUG=1``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import click
import orjson
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from flows.cli_alerts import alerts
from flows.cli_cost import cost
from flows.cli_retention import retention
from flows.cli_scenarios import magnitude_option, scenarios
from flows.cluster import ProcessReport, gather_reports, run_cluster, summed
from flows.config import RunConfig, default
from flows.faults import SCENARIOS
from flows.registry import resolve_flow
from flows.runner import RunReport, execute, finish_run, recovery_config
from flows.scenarios import ScenarioSettings, truth_path
from flows.scenarios import build as build_scenario
from flows.simulator import START_MS
from flows.sources import SimulatedStream
from flows.telemetry import Telemetry
from operators.errors import ConfigError, InputError, LucidstreamError
from operators.escalation import ANSWERS, STATUSES
from operators.flags import CAPABILITIES
from operators.modes import MODES
from sinks.clickhouse import owns_store
from sinks.kafka import ensure_topic, parse_opts, produce_simulated
from sinks.store import Store, check_openable, normalize_dsn, open_store, redact

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

store_option = click.option(
    "--store", default=None, help="chdb:///abs/path or http(s)://user:pass@host:8123/db "
    "[env LUCIDSTREAM_STORE; default ./lucidstream-data]")
alerts_option = click.option(
    "--alert-webhook", "alert_webhooks", multiple=True, metavar="URL",
    help="POST alert notifications here (repeatable) [env LUCIDSTREAM_ALERT_WEBHOOK, "
    "space-separated; rules: LUCIDSTREAM_ALERT_RULES, default infra/alerts.yaml]")
flow_option = click.option("--flow", "flow_name", default="fleet", show_default=True,
                           help="fleet, traffic, an installed flow (entry point group "
                           "lucidstream.flows) or a module path (mypkg.myflow)")
workers_option = click.option("--workers", "-w", default=1, show_default=True,
                              type=click.IntRange(min=1), help="Bytewax workers")
shards_option = click.option("--shards", default=default("shards"), show_default=True,
                             type=click.IntRange(min=1), help="decider shards")
quiet_option = click.option("--quiet", "-q", is_flag=True, help="no progress line")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def app() -> None:
    """Stream decisions with freshness, IDs and traces into ClickHouse."""


def _alert_loop(store: Store, flow_name: str, urls: tuple[str, ...]):  # type: ignore[no-untyped-def]
    """The alert loop for ``urls`` and LUCIDSTREAM_ALERT_WEBHOOK's, or ``None``."""
    urls = (*urls, *os.environ.get("LUCIDSTREAM_ALERT_WEBHOOK", "").split())
    if not urls:
        return None
    from flows.alert_loop import AlertLoop
    from flows.alerts import DEFAULT_RULES, load_rules
    from flows.notify import Webhooks

    rules = load_rules(os.environ.get("LUCIDSTREAM_ALERT_RULES") or DEFAULT_RULES)
    return AlertLoop(store, rules, Webhooks(urls),
                     labels={"flow": flow_name, "store": store.safe_dsn})


def _run(config: RunConfig, flow_name: str, workers: int, quiet: bool,
         processes: int = 1, process_id: int | None = None,
         addresses: list[str] | None = None, dashboard_port: int | None = None,
         alert_webhooks: tuple[str, ...] = (), report_to: str | None = None) -> None:
    config.flow = flow_name
    if process_id is not None:  # one process of a cluster the parent started
        _run_cluster_process(config, flow_name, workers, quiet, process_id, addresses or [],
                             report_to)
        return
    if processes > 1:
        _run_cluster(config, flow_name, processes, alert_webhooks)
        return
    store = open_store(config.store)  # fail fast, one line, if the store is unreachable
    server = None
    try:
        if dashboard_port is not None:
            from flows.dashboard import DashboardServer, load_token

            server = DashboardServer(store, port=dashboard_port, token=load_token()).start()
            print(f"dashboard on {server.url}", file=sys.stderr, flush=True)
        telemetry = Telemetry()
        flow = resolve_flow(flow_name).get_flow(config, telemetry)
        alerts = _alert_loop(store, flow_name, alert_webhooks)
        report = execute(flow, telemetry, store, flow_name, config.input, workers,
                         not quiet, config.recovery_dir, config.epoch_s, alerts=alerts)
        assert report is not None
        _summary(report, config)
        if alerts is not None:
            stats = alerts.webhooks.stats()
            fired = sum(n.status == "firing" for n in alerts.sent)
            print(f"alerts: {fired} fired, {len(alerts.sent) - fired} resolved; "
                  f"{stats['delivered']} delivered, {stats['failed']} failed, "
                  f"{stats['pending']} not settled", file=sys.stderr)
    finally:
        if server is not None:
            server.stop()
        store.close()


def _run_cluster(config: RunConfig, flow_name: str, processes: int,
                 alert_webhooks: tuple[str, ...]) -> None:
    """Run ``processes`` copies of this command as one cluster; the run is recorded with
    the sum of their counters.

    The parent never imports the flow. An embedded store is only checked here (free,
    its directory writable): only one process may have it open at a time, and the one
    its rows are routed to opens and migrates it, then records the run (the parent
    would have to load the engine again to open it). A server store is opened
    (reachable, migrated) before the processes start, so none of them races another
    to create its tables, and the parent records the run.
    """
    if alert_webhooks or os.environ.get("LUCIDSTREAM_ALERT_WEBHOOK"):
        raise ConfigError("alert webhooks are sent by a flow of one process; with "
                          "--processes, leave out --alert-webhook")
    embedded = str(config.store).startswith("chdb://")  # normalised by RunConfig
    if embedded:
        check_openable(config.store)
    else:
        open_store(config.store).close()
    started = int(time.time() * 1000)
    if config.recovery_dir:
        recovery_config(config.recovery_dir)  # initialise once, before the processes
    reports = run_cluster(processes)
    if embedded:
        return  # recorded by the process that owns the store
    snap, usage = summed(reports)
    with open_store(config.store, migrate=False) as store:  # migrated above
        report = finish_run(store, flow_name, config.input, started, snap, usage)
    _summary(report, config, cluster=processes)


def _run_cluster_process(config: RunConfig, flow_name: str, workers: int, quiet: bool,
                         process_id: int, addresses: list[str], report_to: str | None
                         ) -> None:
    """One process of a cluster: run its part of the flow and write its counters. The
    process that owns an embedded store (it has the store open) then records the
    cluster's run and prints its summary."""
    config.process_id = process_id
    started = int(time.time() * 1000)
    telemetry = Telemetry()
    flow = resolve_flow(flow_name).get_flow(config, telemetry)
    execute(flow, telemetry, None, flow_name, config.input, workers, not quiet,
            config.recovery_dir, config.epoch_s, process_id, addresses)
    if not report_to:  # started by hand (bytewax -i/-a style): nothing to report to
        return
    ProcessReport.of_this_process(telemetry.snapshot()).write(Path(report_to))
    if owns_store(config.store):
        snap, usage = summed(gather_reports(Path(report_to), len(addresses)))
        with open_store(config.store) as store:
            report = finish_run(store, flow_name, config.input, started, snap, usage)
        _summary(report, config, cluster=len(addresses))


def _summary(report: RunReport, config: RunConfig, cluster: int = 0) -> None:
    s = report.snapshot
    title = f"lucidstream run {report.run_id[:8]}"
    if cluster:
        title += f", a cluster of {cluster} processes"
    table = Table(title=title, show_header=True)
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
    table.add_row("traced decisions (budget dropped)", f"{s.traced:,} ({s.traces_dropped:,})",
                  "")
    table.add_row("watermark lag now / max", f"{s.lag_ms:,} / {s.max_lag_ms:,} ms", "")
    table.add_row("mode", s.mode, "")
    table.add_row("wall time", f"{s.elapsed_s:.1f} s", "")
    out.print(table)
    out.print(f"store: {redact(config.store)}")


kafka_options = [
    click.option("--kafka", envvar="LUCIDSTREAM_KAFKA", help="Kafka bootstrap HOST:PORT "
                 "[env LUCIDSTREAM_KAFKA]"),
    click.option("--topic", default=default("topic"), show_default=True,
                 help="sensor topic"),
    click.option("--kafka-opt", multiple=True, metavar="KEY=VALUE",
                 help="any librdkafka setting (TLS, SASL, ...); repeatable; added to "
                 "LUCIDSTREAM_KAFKA_OPTS (k=v;k=v), which keeps secrets off the command line"),
]


def _kafka_opts(given: tuple[str, ...]) -> dict[str, str]:
    """librdkafka settings: ``LUCIDSTREAM_KAFKA_OPTS``, then ``--kafka-opt`` over them."""
    return {**parse_opts(os.environ.get("LUCIDSTREAM_KAFKA_OPTS")), **parse_opts(list(given))}


def with_kafka(command):  # type: ignore[no-untyped-def]
    for option in reversed(kafka_options):
        command = option(command)
    return command


@app.command()
@click.option("--source", "source", default="sim", show_default=True,
              help="'sim', 'kafka', or a JSONL file")
@click.option("--input", "input_", hidden=True, help="alias of --source")
@click.option("--events", type=click.IntRange(min=1), help="stop after N events")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True),
              help="stop after S seconds")
@click.option("--sources", default=default("sources"), show_default=True,
              type=click.IntRange(min=1), help="simulated sources (robots)")
@click.option("--seed", default=default("seed"), show_default=True, type=int,
              help="simulator seed")
@click.option("--rate", default=default("rate"), show_default=True,
              type=click.FloatRange(min=0),
              help="events/s in total; 0 = as fast as possible on the replay clock")
@with_kafka
@click.option("--outcomes-topic", default=default("outcomes_topic"), show_default=True,
              help="outcome topic, read when it exists")
@click.option("--emit-kafka", is_flag=True, help="also produce decisions and dead letters")
@click.option("--decisions-topic", default=default("decisions_topic"), show_default=True)
@click.option("--dead-letters-topic", default=default("dead_letters_topic"),
              show_default=True)
@click.option("--batch", default=default("batch_size"), show_default=True,
              type=click.IntRange(min=1),
              help="events per input batch")
@click.option("--stop-at-end", is_flag=True, help="stop when every partition is read")
@click.option("--replay", "replay_topic", is_flag=True,
              help="Kafka: replay the topic on the pipeline clock, its partitions merged "
              "by timestamp under a watermark (a file always replays)")
@click.option("--partition-idle-ms", default=default("partition_idle_ms"), show_default=True,
              type=click.IntRange(min=1),
              help="with --replay: how long a quiet partition holds the others back")
@click.option("--recovery-dir", type=click.Path(file_okay=False),
              help="Bytewax recovery directory (created and initialised when empty)")
@click.option("--epoch", default=default("epoch_s"), show_default=True,
              type=click.FloatRange(min=0.1),
              help="seconds between recovery snapshots")
@click.option("--store-give-up", type=click.FloatRange(min=0, min_open=True),
              help="end the run once every store write has failed for S seconds "
              "[default: hold the input and wait for the store]")
@click.option("--store-buffer", default=default("store_buffer"), show_default=True,
              type=click.IntRange(min=1),
              help="batches that may wait for the embedded store's writer; then the "
              "input is held")
@click.option("--store-linger-ms", default=default("store_linger_ms"), show_default=True,
              type=click.IntRange(min=0, max=60_000),
              help="how long the embedded store's writer gathers rows into one insert "
              "(fewer, larger inserts cost the engine less CPU)")
@click.option("--engine-nice", default=default("engine_nice"), show_default=True,
              type=click.IntRange(min=0, max=19),
              help="how much lower the embedded store's threads run than the flow's "
              "(0: the same); decisions wait for the flow, rows for the store")
@click.option("--processes", "-p", default=1, show_default=True, type=click.IntRange(min=1),
              help="run as a cluster of N local processes")
@click.option("--process-id", type=int, hidden=True)
@click.option("--addresses", hidden=True)
@click.option("--report-to", hidden=True)
@click.option("--dashboard", "dashboard_port", type=click.IntRange(0, 65535), default=None,
              is_flag=False, flag_value=8050,
              help="also serve the dashboard from this process [port 8050]")
@click.option("--control", help="control directory for manual mode overrides "
              "[default <store path>-control]")
@store_option
@flow_option
@workers_option
@shards_option
@alerts_option
@quiet_option
def run(source: str, input_: str | None, events: int | None, duration: float | None,
        sources: int, seed: int, rate: float, kafka: str | None, topic: str,
        kafka_opt: tuple[str, ...], outcomes_topic: str, emit_kafka: bool,
        decisions_topic: str, dead_letters_topic: str, batch: int, stop_at_end: bool,
        replay_topic: bool, partition_idle_ms: int, recovery_dir: str | None, epoch: float,
        store_give_up: float | None, store_buffer: int, store_linger_ms: int,
        engine_nice: int, processes: int,
        process_id: int | None, addresses: str | None, report_to: str | None,
        dashboard_port: int | None, control: str | None, store: str | None, flow_name: str,
        workers: int, shards: int, alert_webhooks: tuple[str, ...], quiet: bool) -> None:
    """Run a flow on the simulator (live), Kafka or a file, until done or Ctrl-C."""
    source = input_ or source
    if source not in ("sim", "kafka") and not Path(source).is_file():
        raise InputError(f"--source {source!r} is neither sim, kafka nor an existing file")
    config = RunConfig(store=store, input=source, events=events, duration_s=duration,
                       sources=sources, rate=rate, seed=seed, shards=shards, kafka=kafka,
                       topic=topic, outcomes_topic=outcomes_topic or None,
                       kafka_opts=_kafka_opts(kafka_opt), stop_at_end=stop_at_end,
                       emit_kafka=emit_kafka, decisions_topic=decisions_topic,
                       dead_letters_topic=dead_letters_topic, batch_size=batch,
                       recovery_dir=recovery_dir, epoch_s=epoch, control=control,
                       replay=True if replay_topic else False if source == "kafka" else None,
                       partition_idle_ms=partition_idle_ms, store_buffer=store_buffer,
                       store_linger_ms=store_linger_ms, engine_nice=engine_nice,
                       **({"store_give_up_s": store_give_up} if store_give_up else {}))
    if dashboard_port is not None and processes > 1:
        raise ConfigError("--dashboard serves from the process that owns the store; with "
                          "--processes, run lucidstream dashboard against a ClickHouse server "
                          "DSN instead")
    _run(config, flow_name, workers, quiet, processes, process_id,
         addresses.split(";") if addresses else None, dashboard_port, alert_webhooks,
         report_to)


@app.command()
@click.argument("file", type=click.Path(path_type=Path))
@store_option
@flow_option
@workers_option
@shards_option
@click.option("--batch", default=default("batch_size"), show_default=True,
              type=click.IntRange(min=1),
              help="lines per batch")
@alerts_option
@quiet_option
def replay(file: Path, store: str | None, flow_name: str, workers: int, shards: int,
           batch: int, alert_webhooks: tuple[str, ...], quiet: bool) -> None:
    """Replay a JSONL file on the replay clock, as fast as it goes; deterministic."""
    if not file.is_file():
        raise InputError(f"input file {str(file)!r} does not exist or is not a file")
    config = RunConfig(store=store, input=str(file), replay=True, shards=shards,
                       batch_size=batch)
    _run(config, flow_name, workers, quiet, alert_webhooks=alert_webhooks)


@app.command()
@click.option("--out", "out_file", type=click.Path(path_type=Path),
              help="JSONL file to write (replay clock: arrival_time is stamped)")
@click.option("--kafka", help="produce to Kafka HOST:PORT instead (event_time = send time)")
@click.option("--topic", default=default("topic"), show_default=True)
@click.option("--partitions", default=4, show_default=True, type=click.IntRange(min=1),
              help="partitions when the topic is created")
@click.option("--kafka-opt", multiple=True, metavar="KEY=VALUE",
              help="any librdkafka setting; repeatable")
@click.option("--events", default=20_000, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=default("seed"), show_default=True, type=int)
@click.option("--sources", default=default("sources"), show_default=True,
              type=click.IntRange(min=1))
@click.option("--rate", type=click.FloatRange(min=0),
              help="events/s: of simulated time for a file (default 500); of wall time "
              "for Kafka (default 0 = as fast as possible)")
@flow_option
@click.option("--scenario", type=click.Choice(list(SCENARIOS)),
              help="inject this fault and write its truth beside --out (FILE.truth.json); "
              "defaults then: 24 sources, 240 events/s, 300 s")
@click.option("--from", "from_file", type=click.Path(dir_okay=False),
              help="with --scenario: inject into this recorded JSONL instead")
@magnitude_option("with --scenario: ")
@click.pass_context
def simulate(ctx: click.Context, out_file: Path | None, kafka: str | None, topic: str,
             partitions: int, kafka_opt: tuple[str, ...], events: int, seed: int,
             sources: int, rate: float | None, flow_name: str, scenario: str | None,
             from_file: str | None, magnitude: float) -> None:
    """Write simulator events to a JSONL file, or produce them to a Kafka topic."""
    if (out_file is None) == (kafka is None):
        raise click.UsageError("give exactly one of --out FILE or --kafka HOST:PORT")
    if from_file and not scenario:
        raise click.UsageError("--from FILE needs --scenario NAME (the fault to inject)")
    if scenario:
        if out_file is None:
            raise click.UsageError("--scenario writes a file: give --out FILE")
        given = ctx.get_parameter_source  # the scenario's own defaults unless given
        settings = ScenarioSettings(flow=flow_name, seed=seed, from_file=from_file,
                                    magnitude=magnitude)
        if given("sources") == click.core.ParameterSource.COMMANDLINE:
            settings.sources = sources
        if rate:
            settings.rate = rate
        if given("events") == click.core.ParameterSource.COMMANDLINE:
            settings.duration_s = events / settings.rate
        try:
            truth = build_scenario(scenario, settings, out_file)
        except ValueError as bad:
            raise ConfigError(f"scenario {scenario}: {bad}") from None
        err.print(f"wrote {truth['lines']:,} lines to {out_file} and the truth to "
                  f"{truth_path(out_file)}: {truth['description']}")
        return
    module = resolve_flow(flow_name)
    start = time.perf_counter()
    if kafka:
        settings = {"bootstrap.servers": kafka, **_kafka_opts(kafka_opt)}
        ensure_topic(settings, topic, partitions)
        hz_rate = rate or 10_000.0
        config = RunConfig(store=None, input="sim", replay=True, sources=sources, seed=seed,
                           rate=hz_rate)
        sent = produce_simulated(settings, topic, module.make_generator(config), events,
                                 rate or 0.0)
        err.print(f"produced {sent:,} events from {sources} sources to {topic} on {kafka} "
                  f"in {time.perf_counter() - start:.1f} s")
        return
    assert out_file is not None
    config = RunConfig(store=None, input="sim", replay=True, sources=sources, seed=seed,
                       rate=rate or 500.0)
    stream = SimulatedStream(module.make_generator(config), START_MS, events)
    try:
        handle = open(out_file, "wb")  # noqa: SIM115
    except OSError as exc:
        raise InputError(f"cannot write {str(out_file)!r}: {exc.strerror}") from None
    written = 0
    with handle:  # the file holds the events in the order they arrive
        while not stream.exhausted:
            for event in stream.next_ticks(100):
                handle.write(orjson.dumps(event) + b"\n")
                written += 1
    err.print(f"wrote {written:,} events from {sources} sources to {out_file} "
              f"in {time.perf_counter() - start:.1f} s")


@app.command()
@click.option("--port", default=9092, show_default=True, type=click.IntRange(1, 65535))
@click.option("--host", default="127.0.0.1", show_default=True)
def broker(port: int, host: str) -> None:
    """Start a local Kafka-protocol broker (tansu, in memory) for development.

    Not for production: it keeps data only in memory. Stops on Ctrl-C.
    """
    from flows.broker import start_broker

    dev = start_broker(host, port)
    print(dev.bootstrap, flush=True)
    err.print(f"Kafka-protocol broker (tansu, in memory) on {dev.bootstrap}; Ctrl-C stops it")
    try:
        assert dev.process is not None
        dev.process.wait()
    except KeyboardInterrupt:
        dev.stop()


def parse_ttl(text: str | None) -> int | None:
    """``90s``, ``10m``, ``2h`` or plain seconds to milliseconds."""
    if text is None:
        return None
    units = {"s": 1_000, "m": 60_000, "h": 3_600_000}
    number, unit = (text[:-1], units[text[-1]]) if text and text[-1] in units else (text, 1_000)
    try:
        value = float(number)
    except ValueError:
        raise ConfigError(f"--ttl {text!r}: use seconds or a number with s, m or h "
                          "(90s, 10m, 2h)") from None
    if value <= 0:
        raise ConfigError(f"--ttl {text!r} must be positive")
    return int(value * unit)


control_option = click.option("--control", help="control directory "
                              "[env LUCIDSTREAM_CONTROL; default <store path>-control]")


@app.group()
def mode() -> None:
    """Override the mode of running flows by hand (obeyed within about a second)."""


@mode.command("set")
@click.argument("mode_name", metavar="MODE",
                type=click.Choice(MODES,
                                  case_sensitive=False))
@click.option("--reason", required=True, help="why; recorded with the transition")
@click.option("--ttl", help="expires after this long (90s, 10m, 2h); default: until cleared")
@click.option("--who", default=None, help="who sets it [default: your user name]")
@store_option
@control_option
def mode_set(mode_name: str, reason: str, ttl: str | None, who: str | None,
             store: str | None, control: str | None) -> None:
    """Put MODE in force on every flow using this store, until cleared or expired."""
    import getpass

    from operators.modes import Override
    from sinks.control import ControlFile

    ttl_ms = parse_ttl(ttl)
    until = None if ttl_ms is None else time.time_ns() // 1_000_000 + ttl_ms
    override = Override(mode_name.upper(), reason, who or getpass.getuser(), until)
    directory = _control_dir(store, control)
    ControlFile(directory).set(override)
    expiry = "until cleared" if ttl is None else f"for {ttl}"
    print(f"mode {override.mode} set by {override.who} {expiry}: {reason} ({directory})")


@mode.command("clear")
@click.option("--who", default=None, help="who clears it [default: your user name]")
@store_option
@control_option
def mode_clear(who: str | None, store: str | None, control: str | None) -> None:
    """Remove the override: flows return to their automatic mode."""
    import getpass

    from sinks.control import ControlFile

    directory = _control_dir(store, control)
    ControlFile(directory).clear(who or getpass.getuser())
    print(f"override cleared ({directory})")


@mode.command("show")
@store_option
@control_option
def mode_show(store: str | None, control: str | None) -> None:
    """Show the override in force, if any."""
    from sinks.control import ControlFile

    directory = _control_dir(store, control)
    override, _ = ControlFile(directory).read()
    if override is None:
        print("no override: flows run in their automatic mode")
        return
    expiry = "until cleared" if override.until_ms is None else \
        f"until {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(override.until_ms / 1000))} UTC"
    expired = override.until_ms is not None and override.until_ms <= time.time() * 1000
    print(f"override {override.mode} by {override.who} {expiry}"
          f"{' (expired)' if expired else ''}: {override.reason}")


def _control_dir(store: str | None, control: str | None) -> Path:
    """The control directory of the flows that use ``store`` (``control`` if given)."""
    from sinks.control import control_dir_for

    return control_dir_for(normalize_dsn(store), control)


def _flags_file(store: str | None, control: str | None):  # type: ignore[no-untyped-def]
    from sinks.control import FlagsFile

    return FlagsFile(_control_dir(store, control))


@app.group()
def flag() -> None:
    """Switch capabilities of running flows on and off, everywhere or per source."""


@flag.command("set")
@click.argument("capability", type=click.Choice(CAPABILITIES))
@click.argument("state", type=click.Choice(["on", "off"]))
@click.option("--source", "sources", multiple=True,
              help="only for this source_id (repeat for more) [default: every source]")
@click.option("--reason", default="", help="why; recorded in control_log")
@click.option("--who", default=None, help="who [default: your user name]")
@store_option
@control_option
def flag_set(capability: str, state: str, sources: tuple[str, ...], reason: str,
             who: str | None, store: str | None, control: str | None) -> None:
    """Switch CAPABILITY on or off; running flows follow within about a second."""
    flags = _flags_file(store, control)
    flags.switch(capability, state == "on", sources, who or "", reason)
    scope = f"for {', '.join(sources)}" if sources else "everywhere"
    print(f"{capability} {state} {scope} ({flags.path})")


@flag.command("reset")
@click.option("--who", default=None, help="who [default: your user name]")
@store_option
@control_option
def flag_reset(who: str | None, store: str | None, control: str | None) -> None:
    """Switch every capability back on, everywhere."""
    flags = _flags_file(store, control)
    flags.reset(who or "")
    print(f"every capability on ({flags.path})")


@flag.command("show")
@store_option
@control_option
def flag_show(store: str | None, control: str | None) -> None:
    """The capabilities switched off, and who switched them last."""
    flags, meta = _flags_file(store, control).read()
    for capability in CAPABILITIES:
        if capability in flags.off:
            print(f"{capability:<10} off everywhere")
        elif flags.off_for.get(capability):
            print(f"{capability:<10} off for {', '.join(sorted(flags.off_for[capability]))}")
        else:
            print(f"{capability:<10} on")
    if meta.get("who"):
        print(f"last changed by {meta['who']}: {meta.get('reason') or 'no reason given'}")


@app.group()
def escalations() -> None:
    """The human escalation queue: list open escalations, approve or reject them."""


@escalations.command("list")
@click.option("--status", default="pending", show_default=True,
              type=click.Choice([*STATUSES, "all"]))
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
@store_option
def escalations_list(status: str, limit: int, store: str | None) -> None:
    """Escalations in their latest state, oldest first."""
    where = "" if status == "all" else "WHERE status = {status:String}"
    with open_store(store) as handle:
        columns, rows = handle.query(
            "SELECT escalation_id, decision_id, source_id, action, status, created_at, due_at, "
            f"responder FROM escalations FINAL {where} ORDER BY created_at "
            "LIMIT {limit:UInt32}", parameters={"status": status, "limit": limit},
            read_only=True)
    if not rows:
        print(f"no escalations{'' if status == 'all' else ' ' + status}")
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    out.print(table)


def _answer(escalation_id: str, status: str, who: str | None, store: str | None,
            control: str | None) -> None:
    import getpass

    from operators.errors import StoreBusy
    from sinks.control import Answer, AnswersDir

    responder = who or getpass.getuser()
    try:
        handle = open_store(store)
    except StoreBusy:  # a running flow holds the embedded store: it records the answer
        answers = AnswersDir(_control_dir(store, control))
        answers.put(Answer(escalation_id, status, responder, time.time_ns() // 1_000_000))
        print(f"escalation {escalation_id}: {status} by {responder}, handed to the flow "
              f"that holds the store (it records it within a second; {answers.path})")
        return
    with handle:
        _answer_in_store(handle, escalation_id, status, responder)


def _answer_in_store(handle: Store, escalation_id: str, status: str, responder: str) -> None:
    from operators.escalation import ESCALATION_COLUMNS, answered
    from operators.records import Rows

    found = handle.query(f"SELECT {', '.join(ESCALATION_COLUMNS)} FROM escalations FINAL "
                         "WHERE escalation_id = {id:String} OR decision_id = {id:String}",
                         parameters={"id": escalation_id})[1]
    if not found:
        raise InputError(f"no escalation {escalation_id!r}; see: lucidstream escalations "
                         "list --status all")
    row = dict(zip(ESCALATION_COLUMNS, found[0], strict=True))
    if row["status"] in ANSWERS:
        if row["status"] == status:
            print(f"escalation {row['escalation_id']} was already {status} by "
                  f"{row['responder']}")
            return
        raise InputError(f"escalation {row['escalation_id']} was already "
                         f"{row['status']} by {row['responder']}; answers are final")
    for name in ("created_at", "due_at"):  # read back as UTC datetimes: epoch ms again
        value = row[name]
        if isinstance(value, datetime):
            aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
            row[name] = round(aware.timestamp() * 1000)
    answer = answered(tuple(row[c] for c in ESCALATION_COLUMNS), status, responder,
                      time.time_ns() // 1_000_000)
    handle.insert(Rows("escalations", ESCALATION_COLUMNS, [answer]), dedup=False)
    print(f"escalation {row['escalation_id']} {status} by {responder}")


@escalations.command("approve")
@click.argument("escalation_id")
@click.option("--who", default=None, help="who answers [default: your user name]")
@store_option
@control_option
def escalations_approve(escalation_id: str, who: str | None, store: str | None,
                        control: str | None) -> None:
    """Approve ESCALATION_ID (or its decision ID): the action may be executed."""
    _answer(escalation_id, "approved", who, store, control)


@escalations.command("reject")
@click.argument("escalation_id")
@click.option("--who", default=None, help="who answers [default: your user name]")
@store_option
@control_option
def escalations_reject(escalation_id: str, who: str | None, store: str | None,
                       control: str | None) -> None:
    """Reject ESCALATION_ID (or its decision ID): the action is not executed."""
    _answer(escalation_id, "rejected", who, store, control)


@app.command()
@store_option
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", default=8050, show_default=True, type=click.IntRange(0, 65535))
@click.option("--refresh", default=5, show_default=True, type=click.IntRange(min=1),
              help="seconds between page refreshes")
@click.option("--token-file", type=click.Path(dir_okay=False),
              help="file holding the token a request must carry (else LUCIDSTREAM_TOKEN); "
              "required when --host is not a loopback address")
def dashboard(store: str | None, host: str, port: int, refresh: int,
              token_file: str | None) -> None:
    """Serve the dashboard panels as an HTML page (Ctrl-C stops it)."""
    from flows.dashboard import DashboardServer, load_token

    token = load_token(token_file)
    with open_store(store) as handle:
        server = DashboardServer(handle, host, port, refresh, token)
        print(f"dashboard of {handle.safe_dsn} on {server.url} (Ctrl-C stops it)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()


@app.command("trace")
@click.argument("decision_id")
@store_option
def trace_cmd(decision_id: str, store: str | None) -> None:
    """Print the span tree of DECISION_ID (when it was sampled), with durations."""
    with open_store(store) as handle:
        columns, rows = handle.query(
            "SELECT TraceId, SpanId, ParentSpanId, SpanName, toUnixTimestamp64Nano(Timestamp), "
            "Duration, SpanAttributes, ResourceAttributes FROM otel_traces "
            "WHERE SpanAttributes['decision_id'] = {id:String} ORDER BY Timestamp, SpanName",
            parameters={"id": decision_id})
    if not rows:
        raise InputError(f"no trace for decision {decision_id!r}: it was not sampled (every "
                         "non-NORMAL, stale, fallback, escalated, rejected or canary decision "
                         "is; of the rest LUCIDSTREAM_TRACE_RATIO), or its spans are not "
                         "exported yet")
    spans = [dict(zip(columns, r, strict=True)) for r in rows]
    ids = {s["SpanId"] for s in spans}
    children: dict[str, list[dict]] = {}
    for span in spans:
        children.setdefault(span["ParentSpanId"] if span["ParentSpanId"] in ids else "",
                            []).append(span)
    tree = Tree(f"trace {spans[0]['TraceId']}")

    def add(node: Tree, span: dict, base: int) -> None:
        offset = (span["toUnixTimestamp64Nano(Timestamp)"] - base) / 1e6
        label = f"[bold]{span['SpanName']}[/] {span['Duration'] / 1e6:.3f} ms (+{offset:.3f} ms)"
        attributes = {k: v for k, v in span["SpanAttributes"].items() if k != "decision_id"}
        branch = node.add(label + "".join(f"\n  {k} = {v}" for k, v in
                                          sorted(attributes.items())))
        for child in children.get(span["SpanId"], []):
            add(branch, child, base)

    for root in children.get("", []):
        if root["ParentSpanId"]:
            tree.label = f"{tree.label}\ncontinues the producer's span {root['ParentSpanId']}"
        resource = root["ResourceAttributes"]
        node = tree.add(f"{resource.get('service.name', '')} "
                        f"{resource.get('lucidstream.worker', '')}")
        add(node, root, root["toUnixTimestamp64Nano(Timestamp)"])
    out.print(tree)


@app.command(context_settings={"ignore_unknown_options": True})  # SQL may start with --
@click.argument("sql")
@store_option
@click.option("--format", "fmt", default="table", show_default=True,
              type=click.Choice(["table", "csv", "json"]))
def query(sql: str, store: str | None, fmt: str) -> None:
    """Run a read-only query (or a dashboard panel by name) and print the result.

    SQL may be the name of a panel in infra/dashboards (event_throughput,
    freshness_lag, stale_rate, decision_latency, confidence_distribution,
    fallback_rate, drift_alarms, mode_timeline, escalations, canary_pass_rate,
    variant_comparison, recent_traces, storage_per_table, storage_growth,
    cpu_per_decisions, rows_inserted, store_and_model_latency).
    """
    from flows.panels import panel

    named = panel(sql)
    if named is not None:
        sql = named.sql
    with open_store(store) as handle:
        columns, rows = handle.query(sql, read_only=True)
    if not rows and fmt == "table":
        print("(no rows)")
        return
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


app.add_command(scenarios)
app.add_command(retention)
app.add_command(cost)
app.add_command(alerts)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: one-line errors, meaningful exit codes."""
    logging.basicConfig(level=os.environ.get("LUCIDSTREAM_LOG", "WARNING").upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # The driver logs connection failures itself; we report them once, on one line.
    if logging.getLogger().level > logging.DEBUG:
        for noisy in ("clickhouse_connect", "urllib3", "urllib3.connectionpool",
                      "lucidstream.librdkafka"):
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
