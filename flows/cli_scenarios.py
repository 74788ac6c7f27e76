"""``lucidstream scenarios``: run the fault scenario suite and print its table."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from flows.faults import SCENARIOS, describe
from flows.scenarios import ScenarioSettings, names_for, run_one, run_suite
from operators.errors import ConfigError

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def magnitude_option(before: str = ""):  # type: ignore[no-untyped-def]
    """``--magnitude``: the scale of the sized faults (``simulate`` and ``scenarios``)."""
    return click.option("--magnitude", default=1.0, show_default=True,
                        type=click.FloatRange(min=0, min_open=True),
                        help=f"{before}scale of the sized faults (shift, ramp, fleet_shift): 2 "
                        "moves the value twice as far as `scenarios list` states")


def settings_options(command):  # type: ignore[no-untyped-def]
    """The options that say how a scenario's stream is made."""
    for option in reversed([
        click.option("--flow", "flow", default="fleet", show_default=True,
                     help="fleet, traffic, an installed flow or a module path"),
        click.option("--from", "from_file", type=click.Path(dir_okay=False),
                     help="inject into this recorded JSONL instead of the flow's simulator"),
        click.option("--duration", "duration_s", default=300.0, show_default=True,
                     type=click.FloatRange(min=30), help="seconds of event time simulated"),
        click.option("--sources", default=24, show_default=True, type=click.IntRange(min=1)),
        click.option("--rate", default=240.0, show_default=True,
                     type=click.FloatRange(min=1), help="events/s of event time, in total"),
        click.option("--value", default=None,
                     help="the value a value fault changes [default: the first the flow's "
                     "drift detectors watch]"),
        click.option("--at", default=0.5, show_default=True, type=click.FloatRange(0.1, 0.9),
                     help="where in the stream the fault starts (share of its event time)"),
        click.option("--batch", default=1_000, show_default=True, type=click.IntRange(min=1),
                     help="lines per input batch of each replay (health is heard of once "
                     "per batch)"),
        click.option("--outage", "outage_s", default=30.0, show_default=True,
                     type=click.FloatRange(min=1),
                     help="seconds of wall time the store_outage scenario's store fails"),
        magnitude_option(),
    ]):
        command = option(command)
    return command


def _settings(seed: int, **options: object) -> ScenarioSettings:
    return ScenarioSettings(seed=seed, **options)  # type: ignore[arg-type]


@click.group()
def scenarios() -> None:
    """Inject known faults, replay them, and score what the system noticed."""


@scenarios.command("list")
def scenarios_list() -> None:
    """The scenarios and what each injects."""
    table = Table("scenario", "fault")
    for name in SCENARIOS:
        table.add_row(name, describe(name))
    out.print(table)


@scenarios.command("one", hidden=True)
@click.argument("name")
@click.option("--dir", "workdir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=1, type=int)
@settings_options
def scenarios_one(name: str, workdir: Path, seed: int, **options: object) -> None:
    """One scenario in this process (the suite runs each so): writes NAME-SEED.score.json."""
    try:
        result = run_one(name, _settings(seed, **options), workdir)
    except ValueError as bad:
        raise ConfigError(f"scenario {name}: {bad}") from None
    (workdir / f"{name}-{seed}.score.json").write_text(json.dumps(result, indent=1))


def _seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r}: give seeds as 1,2,3") from None


@scenarios.command("run")
@click.option("--only", multiple=True, help="run only this scenario; repeatable")
@click.option("--seeds", default="1", show_default=True, help="seeds, comma-separated")
@click.option("--seed", "one_seed", type=int, default=None, help="one seed (same as --seeds S)")
@click.option("--jobs", "-j", default=2, show_default=True, type=click.IntRange(min=1),
              help="scenarios run at once (each is one process)")
@click.option("--dir", "workdir", type=click.Path(file_okay=False, path_type=Path),
              help="where events, truth, stores and reports go [default: a new temp dir]")
@settings_options
def scenarios_run(only: tuple[str, ...], seeds: str, one_seed: int | None, jobs: int,
                  workdir: Path | None, **options: object) -> None:
    """Run the scenarios and print the table; writes scenarios.json and report.html."""
    names = names_for(only)
    seed_list = [one_seed] if one_seed is not None else _seeds(seeds)
    workdir = workdir or Path(tempfile.mkdtemp(prefix="lucidstream-scenarios-"))
    workdir.mkdir(parents=True, exist_ok=True)
    settings = _settings(seed_list[0], **options)
    started = time.perf_counter()
    total = len(names) * len(seed_list)
    done: list[dict] = []

    def progress(result: dict) -> None:
        done.append(result)
        mark = "pass" if result.get("passed") else "FAIL"
        err.print(f"[{len(done)}/{total}] {result['scenario']} seed {result['seed']}: {mark}"
                  + (f" ({result['error']})" if result.get("error") else ""))

    results = run_suite(names, settings, seed_list, workdir, jobs, progress)
    out.print(results_table(results))
    summary = {"settings": vars(settings) | {"seeds": seed_list}, "results": results,
               "seconds": round(time.perf_counter() - started, 1)}
    (workdir / "scenarios.json").write_text(json.dumps(summary, indent=1))
    from flows.report import write_report

    write_report(results, workdir / "report.html")
    passed = sum(1 for r in results if r.get("passed"))
    err.print(f"{passed}/{len(results)} passed in {summary['seconds']} s; "
              f"{workdir / 'scenarios.json'}, {workdir / 'report.html'}")
    if passed < len(results):
        raise click.exceptions.Exit(1)


def _ms(value: object) -> str:
    return "" if value is None else f"{int(value) / 1000:.1f} s"  # type: ignore[call-overload]


def results_table(results: list[dict]) -> Table:
    table = Table("scenario", "seed", "caught by", "delay (clock)", "bound", "response",
                  "false", "stale-fresh / lost / doubled", "result")
    for r in results:
        if r.get("error"):
            table.add_row(r["scenario"], str(r["seed"]), f"error: {r['error']}"[:60], "", "",
                          "", "", "", "FAIL")
            continue
        caught = f"{r['signal']} @ {r['source'] or 'fleet'}" if r["detected"] else "NO"
        if r["kind"] == "control":  # a recording's control: its alarms are its own
            caught = f"baseline: {r['own_alarms']} alarms" if r.get("own_alarms") else "-"
        response = r["mode_reached"] + (f", {r['escalated']} escalated" if r["escalated"]
                                        else "") + (f", {r['fallback']} fallback"
                                                    if r["fallback"] else "")
        table.add_row(r["scenario"], str(r["seed"]), caught, _ms(r["delay_clock_ms"]),
                      _ms(r["bound_ms"]) if r["kind"] != "control" else "",
                      response + ("" if r["response_ok"] else " (wrong)"),
                      str(r["false_alarms"]),
                      f"{r['stale_marked_fresh']} / {r['lost']} / {r['doubled']}",
                      "pass" if r["passed"] else "FAIL")
    return table
