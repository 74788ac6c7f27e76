"""The figures ``lucidstream cost`` uses without a store, measured on this machine.

Replays simulated fleet events through the CLI into a fresh embedded store (the run
records its own CPU seconds and peak RSS in ``runs``), reads the bytes per event of
every table from the store's ``system.parts``, and splits the CPU per event into
stages measured in this process: decode, decide, and the decisions' insert; the
rest of the replay's CPU (Bytewax, traces, the other tables, start-up) is its own
line. Writes ``benchmarks/figures.json`` and prints a table with the machine noted.

    python -m benchmarks.costs [--events 200000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from benchmarks.stages import machine
from flows import fleet
from flows.cost import BENCH_FIGURES, figures_from_store, load_figures
from flows.gctune import TUNED, tune_gc
from operators.decider import Decider
from operators.events import EventDecoder
from operators.records import DECISION_COLUMNS, Rows
from sinks.store import close_all, open_store

ROOT = Path(__file__).resolve().parents[1]


def _cpu(fn) -> float:  # type: ignore[no-untyped-def]
    started = time.process_time()
    fn()
    return time.process_time() - started


def stage_cpu(path: Path, store_dsn: str) -> dict[str, float]:
    """CPU seconds of decode, decide and the decisions' insert over ``path``."""
    tune_gc(TUNED)  # as a flow does once it is built
    lines = path.read_bytes().splitlines()
    records = [(f"file:bench:{i}", line) for i, line in enumerate(lines)]
    batches = [records[i:i + 2000] for i in range(0, len(records), 2000)]
    decoder = EventDecoder()
    decoded: list = []
    seconds = {"decode": _cpu(lambda: decoded.extend(decoder.decode_batch(b).events
                                                      for b in batches))}
    decider = Decider(fleet.POLICY, replay=True, flow="bench", drift=fleet.DRIFT)
    rows: list = []
    seconds["decide"] = _cpu(lambda: rows.extend(decider.process(b).decisions
                                                 for b in decoded))
    store = open_store(store_dsn)
    seconds["insert decisions"] = _cpu(lambda: [store.insert(
        Rows("decisions", DECISION_COLUMNS, r), dedup=False) for r in rows])
    store.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--out", type=Path, default=BENCH_FIGURES)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        subprocess.run([sys.executable, "-m", "flows.cli", "simulate", "--out", str(path),
                        "--events", str(args.events), "--sources", "50"], cwd=ROOT,
                       check=True, capture_output=True)
        # first, while no store is open here: the engine's background work for a
        # store this process opened would count as this process's CPU
        stages = stage_cpu(path, f"chdb://{tmp}/stages")
        close_all()
        dsn = f"chdb://{tmp}/store"
        subprocess.run([sys.executable, "-m", "flows.cli", "replay", str(path), "--store", dsn,
                        "--quiet"], cwd=ROOT, check=True, capture_output=True)
        with open_store(dsn) as store:
            measured = figures_from_store(store, path.stat().st_size / args.events)
        close_all()
    whole = measured.cpu_us_per_event["whole process"]
    cpu_us = {stage: s / args.events * 1e6 for stage, s in stages.items()}
    cpu_us["rest of the replay (Bytewax, traces, other tables, start-up)"] = max(
        0.0, whole - sum(cpu_us.values()))
    figures = {
        "date": date.today().isoformat(),
        "machine": f"{machine()['cpu']}, {machine()['cores']} cores",
        "events": args.events,
        "cpu_us_per_event": {k: round(v, 2) for k, v in cpu_us.items()},
        "peak_rss_mb": round(measured.peak_rss_mb, 1),
        "events_per_process_s": round(measured.events_per_process_s),
        "table_bytes_per_event": {t: [round(d, 2), round(r, 2)] for t, (d, r) in
                                  measured.table_bytes_per_event.items()},
        "input_bytes_per_event": round(measured.input_bytes_per_event, 1),
    }
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"lucidstream cost figures, {args.events:,} fleet events replayed; machine: "
          f"{json.dumps(machine())}; {figures['date']}")
    print(f"{'CPU per event':64} {'us':>9}")
    for stage, us in figures["cpu_us_per_event"].items():
        print(f"  {stage:62} {us:9.2f}")
    print(f"  {'whole replay process':62} {whole:9.2f}")
    print(f"peak RSS {figures['peak_rss_mb']} MB; one process "
          f"{figures['events_per_process_s']:,} events/s; input "
          f"{figures['input_bytes_per_event']} B/event")
    print(f"{'table':28} {'on disk B/event':>16} {'raw B/event':>12}")
    for table, (disk, raw) in sorted(figures["table_bytes_per_event"].items(),
                                     key=lambda i: -i[1][0]):
        print(f"  {table:26} {disk:16.2f} {raw:12.2f}")
    load_figures(args.out)  # what lucidstream cost reads back


if __name__ == "__main__":
    main()
