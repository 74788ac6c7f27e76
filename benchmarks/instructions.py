"""Instructions per event of each compiled part of the decider, counted by callgrind.

``python -m benchmarks.instructions [--events 30000] [--vs TREE]``

Wall and CPU seconds on a shared machine move by a third from one run to the next,
so a change worth 5 % cannot be seen in them without many runs. The instructions
the code executes do not move: this runs the decider over fleet events under
valgrind's callgrind, counting only inside the compiled parts' ``observe_batch``
(``make native``; the model path and distillation stay Python and are not
counted), and prints the instructions per event of each part and of the functions
they spend them in. With ``--vs TREE`` it counts the same events in another
checkout (built with ``python infra/native.py`` there) and prints the ratio, new
over old, function by function. An instruction is not a nanosecond (a cache miss
costs more than an add), so a whole-process timing still decides; this says where
the work is and whether a change removed some.

Counting is about 50 times slower than running: 30,000 events take about 90 s.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BATCH = 1_250  # a shard's share of a 5,000-event batch, as the flow decides them
ALL = "all parts"
_LINE = re.compile(r"\s*([\d,]+) \([\s\d.]+%\)\s+\S+?:CPyDef_(\S+)")


def decide(events: int, warm: int) -> None:
    """The counted run: decide ``warm`` simulated fleet events uncounted (the warm-ups
    of the detectors, the model and the slow path's scales), then ``events`` counted,
    in batches."""
    import orjson

    import operators
    from flows import fleet
    from flows.config import RunConfig
    from flows.gctune import TUNED, tune_gc
    from flows.simulator import START_MS
    from flows.sources import SimulatedStream
    from operators.decider import Decider
    from operators.events import EventDecoder

    if not operators.NATIVE:
        raise SystemExit("the decider's parts are not compiled here: run `make native` "
                         "(or `python infra/native.py` in this tree) first")
    # the events of make bench's file (benchmarks.stages.bench_lines), written out here:
    # with --vs this runs against another checkout's modules, whose benchmarks may not
    # share a helper
    config = RunConfig(store=None, input="sim", replay=True, sources=50, seed=7, rate=500.0)
    stream = SimulatedStream(fleet.make_generator(config), START_MS, warm + events)
    simulated: list = []
    while not stream.exhausted:
        simulated += stream.next_ticks(100)
    decoder = EventDecoder()
    records = [(f"file:count:{i}", orjson.dumps(e)) for i, e in enumerate(simulated)]
    batches = [decoder.decode_batch(records[i:i + BATCH]).events
               for i in range(0, len(records), BATCH)]
    del simulated, records
    gc.collect()
    gc.freeze()  # as the flow freezes its start-up heap
    tune_gc(TUNED)
    decider = Decider(fleet.POLICY, replay=True, flow="count", drift=fleet.DRIFT)
    counted = len(batches) - events // BATCH
    for batch in batches[:counted]:
        decider.process(batch)
    # instrumentation on from here (callgrind started with it off)
    subprocess.run(["callgrind_control", "--instr=on", str(os.getpid())], check=True,
                   capture_output=True)
    for batch in batches[counted:]:
        decider.process(batch)


def count(tree: Path, events: int, warm: int) -> dict[str, int]:
    """Instructions (inclusive) of each compiled function of ``tree``'s decider."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        run = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
             "--instr-atstart=no", "--toggle-collect=CPyPy_*observe_batch",
             sys.executable, __file__, "--child", str(events), "--warm", str(warm),
             "--tree", str(tree)],
            cwd=tree, capture_output=True, text=True)
        if run.returncode != 0:
            raise SystemExit(f"the counted run in {tree} failed:\n{run.stderr[-2000:]}")
        annotated = subprocess.run(["callgrind_annotate", "--inclusive=yes", str(out)],
                                   capture_output=True, text=True, check=True).stdout
    found: dict[str, int] = {}
    for line in annotated.splitlines():
        match = _LINE.match(line)
        if match:
            name, value = match.group(2), int(match.group(1).replace(",", ""))
            found[name] = max(found.get(name, 0), value)
    return found


def _with_total(found: dict[str, int]) -> dict[str, int]:
    """``found`` with the parts' sum under ``ALL`` (each part's ``observe_batch``)."""
    return {**found, ALL: sum(v for k, v in found.items() if k.endswith("observe_batch"))}


def _name(mangled: str) -> str:
    """``drift___DriftMonitor___observe`` -> ``drift.DriftMonitor.observe``."""
    return mangled.replace("___", ".")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--vs", type=Path, help="another checkout to compare with")
    parser.add_argument("--warm", type=int, default=60_000,
                        help="events decided first, uncounted (their warm-ups)")
    parser.add_argument("--top", type=int, default=25, help="functions shown")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tree", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        sys.path.insert(0, str(args.tree))  # that checkout's code, not this one's
        decide(args.child, args.warm)
        return
    for tool in ("valgrind", "callgrind_annotate"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed: install valgrind (Debian: "
                             "apt-get install valgrind) to count instructions")
    from benchmarks.stages import machine

    n = args.events
    new = _with_total(count(ROOT, n, args.warm))
    old = _with_total(count(args.vs.resolve(), n, args.warm)) if args.vs else None
    print(f"instructions per event, {n:,} fleet events in batches of {BATCH:,}, inside "
          f"the compiled parts' observe_batch; machine: {json.dumps(machine())}")
    header = f"{'function':58} {'this':>9}"
    if old is not None:
        header += f" {'--vs':>9} {'ratio':>6}"
    print(header)

    def row(name: str, value: int) -> str:
        line = f"{_name(name)[:58]:58} {value / n:9,.0f}"
        if old is not None:
            was = old.get(name, 0)
            line += f" {was / n:9,.0f} {value / was if was else float('nan'):6.3f}"
        return line

    print(row(ALL, new[ALL]))
    shown = sorted((k for k in new if k != ALL and "top_level" not in k), key=lambda k: -new[k])
    for name in shown[:args.top]:
        print(row(name, new[name]))


if __name__ == "__main__":
    main()
