"""The fault scenario suite: inject, replay on the pipeline clock, score from the store.

Each scenario is one process (the embedded store admits one path per process):
it builds the stream (the flow's own simulator, or a recorded JSONL given with
``from_file``), injects the fault (:mod:`flows.faults`), writes the events and
their truth side by side, replays them through the flow into a fresh store and
scores the store (:mod:`flows.scoring`). ``run_suite`` runs many such processes,
``jobs`` at a time, and collects their scores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import orjson

from flows.broker import die_with_parent
from flows.config import RunConfig
from flows.faults import SCENARIOS, FlowFacts, Stream, inject
from flows.registry import resolve_flow
from flows.simulator import START_MS
from flows.sources import SimulatedStream
from operators.errors import ConfigError, InputError

__all__ = ["ScenarioSettings", "build", "facts_of", "run_one", "run_suite"]


@dataclass
class ScenarioSettings:
    """How the suite's streams are made: ``duration_s`` of event time from ``sources``
    sources at ``rate`` events/s in total (the flow's simulator), or a recorded file."""

    flow: str = "fleet"
    seed: int = 1
    duration_s: float = 300.0
    sources: int = 24
    rate: float = 240.0
    from_file: str | None = None
    value: str | None = None
    at: float = 0.5  # where in the stream the fault starts
    # lines per input batch of the replay: health (a stalled model, a failing canary) is
    # heard of once per batch, so a batch should span seconds of pipeline clock, as live
    batch: int = 1_000
    outage_s: float = 30.0  # how long the store_outage scenario's store fails (wall time)
    magnitude: float = 1.0  # scales the sized faults (shift, ramp, fleet_shift)


def facts_of(module: ModuleType) -> FlowFacts:
    """What the scenarios need of a flow, read from its spec."""
    spec = module.make_spec(RunConfig(store="chdb:///nonexistent", replay=True))
    ignore = set(spec.drift.ignore)
    rules = tuple((r.field, r.op, float(r.threshold)) for r in spec.policy.rules.rules)
    watched = tuple(sorted({f for f, _, _ in rules if f not in ignore}))
    declared = tuple(getattr(module, "SCENARIO_VALUES", ()))
    return FlowFacts(watched=declared + watched, rules=rules,
                     decision_type=spec.policy.decision_type, sla_ms=spec.policy.sla_ms,
                     slow_window_ms=spec.slow.window_ms,
                     model_canaries=any(c.checks == "model" for c in spec.canaries))


def base_stream(module: ModuleType, settings: ScenarioSettings) -> tuple[Stream, list[dict]]:
    """The clean stream a fault is injected into, and the changes its generator made on
    purpose (ground truth too)."""
    if settings.from_file:
        if not os.path.isfile(settings.from_file):
            raise InputError(f"--from {settings.from_file!r} does not exist or is not a file")
        return Stream.from_jsonl(settings.from_file), []
    make = getattr(module, "make_generator", None)
    if make is None:
        raise ConfigError(f"flow {module.__name__} has no make_generator(config): give a "
                          "recorded stream with --from FILE")
    config = RunConfig(store=None, input="sim", replay=True, sources=settings.sources,
                       seed=settings.seed, rate=settings.rate)
    generator = make(config)
    events = int(settings.duration_s * settings.rate)
    stream = SimulatedStream(generator, START_MS, events)
    produced: list[dict] = []
    while not stream.exhausted:
        produced += stream.next_ticks(100)
    return Stream.from_events(produced), list(getattr(generator, "changes", []))


def build(name: str, settings: ScenarioSettings, out: Path) -> dict:
    """Write scenario ``name``'s events to ``out`` and its truth beside them
    (``out`` with ``.truth.json``); the truth."""
    module = resolve_flow(settings.flow)
    stream, background = base_stream(module, settings)
    truth = inject(name, stream, facts_of(module), settings.seed, settings.value, settings.at,
                   settings.outage_s, settings.magnitude)
    truth["flow"]["name"] = settings.flow
    truth["background"] = background
    # a recording says nothing of the changes its sources made on purpose: its own
    # replay (the control) is the steady state the faults are judged against
    truth["recorded"] = bool(settings.from_file)
    truth["lines"] = stream.write(out)
    truth["clock"] = {"first_ms": stream.lines[0].arrival, "last_ms": stream.lines[-1].arrival}
    truth_path(out).write_bytes(orjson.dumps(truth, option=orjson.OPT_INDENT_2))
    return truth


def truth_path(events_file: Path) -> Path:
    return events_file.with_name(events_file.name.removesuffix(".jsonl") + ".truth.json")


def run_one(name: str, settings: ScenarioSettings, workdir: Path) -> dict:
    """Build, replay and score scenario ``name`` in this process; the score."""
    from flows.runner import execute
    from flows.scoring import score
    from flows.telemetry import Telemetry
    from sinks.store import open_store

    workdir.mkdir(parents=True, exist_ok=True)
    events = workdir / f"{name}-{settings.seed}.jsonl"
    truth = build(name, settings, events)
    store_dir = workdir / f"{name}-{settings.seed}.store"
    fault = truth.get("model_fault")
    config = RunConfig(store=f"chdb://{store_dir.resolve()}", input=str(events), replay=True,
                       batch_size=settings.batch,
                       model_fault=f"{fault['kind']}:{fault['from_ms']}-{fault['to_ms']}"
                       if fault else None, store_fault=truth.get("store_fault"))
    config.flow = settings.flow
    module = resolve_flow(settings.flow)
    with open_store(config.store) as store:
        telemetry = Telemetry()
        flow = module.get_flow(config, telemetry)
        execute(flow, telemetry, store, settings.flow, str(events), 1, False)
        result = score(store, truth, _baseline(name, settings, workdir))
    result["files"] = {"events": str(events), "truth": str(truth_path(events)),
                       "store": config.store}
    result["window"] = {"start": truth["start"], "end": truth["end"]}
    result["clock"] = truth["clock"]
    return result


def _baseline(name: str, settings: ScenarioSettings, workdir: Path) -> list[dict] | None:
    """For a fault injected into a recording: the alarms its unfaulted replay (the
    control of the same seed, run first) raised, the recording's own."""
    own = workdir / f"control-{settings.seed}.score.json"
    if not settings.from_file or name == "control" or not own.is_file():
        return None
    return list(json.loads(own.read_text()).get("alarms", []))


def run_suite(names: list[str], settings: ScenarioSettings, seeds: list[int], workdir: Path,
              jobs: int = 2, on_done=None) -> list[dict]:  # type: ignore[no-untyped-def]
    """Each (scenario, seed) in its own process, ``jobs`` at a time; their scores in
    order. A scenario whose process fails is reported as failed, with its error. With a
    recording (``--from``), the controls run first: the faults are judged against them."""
    tasks = [(name, seed) for name in names for seed in seeds]

    def one(task: tuple[str, int]) -> dict:
        name, seed = task
        out = workdir / f"{name}-{seed}.score.json"
        argv = [sys.executable, "-m", "flows.cli", "scenarios", "one", name,
                "--dir", str(workdir), "--seed", str(seed), "--flow", settings.flow,
                "--duration", str(settings.duration_s), "--sources", str(settings.sources),
                "--rate", str(settings.rate), "--at", str(settings.at),
                "--batch", str(settings.batch), "--outage", str(settings.outage_s),
                "--magnitude", str(settings.magnitude)]
        if settings.from_file:
            argv += ["--from", settings.from_file]
        if settings.value:
            argv += ["--value", settings.value]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=os.getcwd(),
                              preexec_fn=die_with_parent)
        if done.returncode != 0 or not out.is_file():
            result = {"scenario": name, "seed": seed, "passed": False, "detected": False,
                      "error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
        else:
            result = json.loads(out.read_text())
        if on_done is not None:
            on_done(result)
        return result

    if settings.from_file and "control" not in names:  # no baseline from an earlier run
        for stale in workdir.glob("control-*.score.json"):
            stale.unlink()
    first = [t for t in tasks if settings.from_file and t[0] == "control"]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        done = dict(zip(first, pool.map(one, first), strict=True))
        rest = [t for t in tasks if t not in done]
        done.update(zip(rest, pool.map(one, rest), strict=True))
    return [done[t] for t in tasks]


def names_for(only: tuple[str, ...]) -> list[str]:
    unknown = [n for n in only if n not in SCENARIOS]
    if unknown:
        raise ConfigError(f"unknown scenario {unknown[0]!r}; choose from "
                          f"{', '.join(SCENARIOS)}")
    return list(only) or list(SCENARIOS)
