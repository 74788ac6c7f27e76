"""Stage costs and end-to-end replay throughput, measured in one process.

Prints a table (and writes ``benchmarks/results.json``) with the machine noted.
Figures are per event and as ratios against the ``orjson.loads`` baseline run
in the same process, since the machine is shared and noisy.

    python -m benchmarks.stages [--events 200000]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from importlib import metadata
from pathlib import Path

import orjson

import operators
from flows import fleet
from flows.config import RunConfig
from flows.gctune import TUNED, tune_gc
from flows.pipeline import build_flow, make_source
from flows.simulator import START_MS
from flows.sources import SimulatedStream
from flows.telemetry import Telemetry
from operators.decider import Decider
from operators.drift import DriftConfig
from operators.events import EventDecoder
from operators.records import DECISION_COLUMNS, Rows
from sinks.store import open_store


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {p: metadata.version(p) for p in ("bytewax", "river", "chdb",
                                                  "clickhouse-connect", "numpy")}
    return {"cpu": cpu, "cores": str(os.cpu_count()), "python": platform.python_version(),
            "compiled": str(operators.NATIVE), **versions}


def timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def part_costs(batches: list, drift: DriftConfig = fleet.DRIFT) -> dict[str, float]:
    """Seconds spent in each part of one decider over ``batches`` (each part's
    ``observe_batch`` timed as a whole; the rest is stamping, freshness, outcomes,
    quality and canaries)."""
    decider = Decider(fleet.POLICY, replay=True, flow="bench", drift=drift)
    spent: dict[str, float] = {}

    class Timed:
        """A part whose ``observe_batch`` is timed (a compiled part takes no new
        attribute, so it is wrapped, not patched)."""

        def __init__(self, part) -> None:  # type: ignore[no-untyped-def]
            self.part, self.name = part, f"  part: {type(part).__name__}"

        def observe_batch(self, batch, out) -> None:  # type: ignore[no-untyped-def]
            start = time.perf_counter()
            self.part.observe_batch(batch, out)
            spent[self.name] = spent.get(self.name, 0.0) + time.perf_counter() - start

        def forget(self, source_id: str) -> None:
            self.part.forget(source_id)

    decider.parts = [Timed(part) for part in decider.parts]
    start = time.perf_counter()
    for batch in batches:
        decider.process(batch)
    total = time.perf_counter() - start
    costs = dict(sorted(spent.items(), key=lambda item: -item[1]))
    costs["  rest: clock, freshness, quality"] = total - sum(spent.values())
    return costs


def bench_lines(n: int) -> list[bytes]:
    """The first ``n`` events of ``make bench``'s file, as ``lucidstream simulate --out``
    writes them: 50 robots at 500 events/s of simulated time (10 Hz each), seed 7,
    in arrival order. The rate matters: at 10 Hz a slow window holds 50 readings and
    a million events span 33 minutes, where most of a detector's work is steady
    state."""
    config = RunConfig(store=None, input="sim", replay=True, sources=50, seed=7, rate=500.0)
    stream = SimulatedStream(fleet.make_generator(config), START_MS, n)
    lines: list[bytes] = []
    while not stream.exhausted:
        lines += map(orjson.dumps, stream.next_ticks(100))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    n = args.events
    lines = bench_lines(n)
    tune_gc(TUNED)  # as a flow does once it is built
    records = [(f"file:bench:{i}", line) for i, line in enumerate(lines)]
    decoder = EventDecoder()
    batches = [records[i:i + 2000] for i in range(0, n, 2000)]

    results: dict[str, float] = {}
    results["orjson.loads (baseline)"] = timed(lambda: [orjson.loads(x) for x in lines])
    results["decode + validate"] = timed(lambda: [decoder.decode_batch(b) for b in batches])
    decoded = [decoder.decode_batch(b).events for b in batches]

    def decide() -> list:
        decider = Decider(fleet.POLICY, replay=True, flow="bench", drift=fleet.DRIFT)
        return [decider.process(b).decisions for b in decoded]

    results["decide (everything, drift included)"] = timed(decide, repeat=1)
    results.update(part_costs(decoded))
    # the same decider without the relation detector: what relation: costs is the
    # difference of the drift part's rows
    without = part_costs(decoded, dataclasses.replace(fleet.DRIFT, relation_block=0))
    results.update({f"{name} (no relation:)": seconds for name, seconds in without.items()
                    if "Drift" in name})
    decisions = [row for batch in decide() for row in batch]

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        store = open_store(f"chdb://{tmp}/store")
        chunks = [decisions[i:i + 2000] for i in range(0, n, 2000)]
        results["store insert (decisions)"] = timed(lambda: [store.insert(
            Rows("decisions", DECISION_COLUMNS, c), dedup=False) for c in chunks], repeat=1)
        store.command("TRUNCATE TABLE decisions")
        config = RunConfig(store=f"chdb://{tmp}/store", input=str(path), replay=True)

        def full() -> None:
            from bytewax.testing import run_main

            run_main(build_flow(fleet.make_spec(config), make_source(config,
                                fleet.make_generator), Telemetry()))

        results["full replay flow (end to end)"] = timed(full, repeat=1)
        store.close()

    base = results["orjson.loads (baseline)"]
    print(f"lucidstream stage costs, {n:,} fleet events; machine: {json.dumps(machine())}")
    print(f"{'stage':36} {'us/event':>9} {'events/s':>12} {'x baseline':>11}")
    for stage, seconds in results.items():
        print(f"{stage:36} {seconds / n * 1e6:9.2f} {n / seconds:12,.0f} {seconds / base:11.1f}")
    out = Path(__file__).with_name("stages.json")
    out.write_text(json.dumps({"events": n, "machine": machine(), "seconds": results},
                              indent=2))


if __name__ == "__main__":
    main()
