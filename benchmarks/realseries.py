"""Real annotated series: ``python -m benchmarks.realseries``.

The fleet simulator and the other generators are streams we wrote; these are readings of
real plant, with their anomalies named by the people who recorded them. Each series is
replayed through the CLI as contract JSONL (one source, one value, event time from the
series' own timestamps, arriving 200 ms later) into a fresh embedded store, and its
alarms are read from ``drift_events`` as an operator would. Scored as the Numenta
Anomaly Benchmark scores windows: an anomaly is found when an alarm is decided inside its
window, and its delay runs from the anomaly's first reading to that alarm; an alarm
outside every window is false.

Built in, as it ships with river: Water Flow, the hourly flow through a pipeline branch
(l/s, March to May 2022, 1,268 readings), whose documentation names four anomalous
segments: three "low value moments" (water losses or maintenance) and "a small peak in
the water inflow after the first 2 segments" (a pumping operation). The low moments are
the runs of readings under 90 % of the series' median, the peak the highest reading; each
window is the anomaly's readings and, on either side, half of a tenth of the series
divided among the anomalies (NAB's window size).

``--nab DIR`` scores series in the Numenta Anomaly Benchmark's layout instead (``DIR/data``
and ``DIR/labels/combined_windows.json``; ``--only`` picks series by a substring of their
names): its windows are its own, and delays run from their start.

Prints one row per anomaly and one per series, with the machine noted.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.foreign import alarms
from benchmarks.stages import machine

ARRIVAL_MS = 200  # each reading reaches the pipeline this long after its event time
HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Anomaly:
    """One annotated anomaly: what it is, its window, and its first reading (ms)."""

    name: str
    start_ms: int
    end_ms: int
    first_ms: int


@dataclass(frozen=True)
class Series:
    """A named series of (event ms, reading) and its annotated anomalies."""

    name: str
    value: str
    readings: list[tuple[int, float]]
    anomalies: list[Anomaly]


def _ms(stamp: str) -> int:
    """Milliseconds since the epoch of an ISO time (naive times are UTC, as NAB's are)."""
    moment = datetime.fromisoformat(stamp.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _windowed(readings: list[tuple[int, float]],
              spans: list[tuple[str, int, int]]) -> list[Anomaly]:
    """NAB's windows around anomalies given as (name, first index, last index): a tenth of
    the series, shared among them, half on either side of each."""
    margin = len(readings) // (10 * len(spans)) // 2
    return [Anomaly(name, readings[max(0, first - margin)][0],
                    readings[min(len(readings) - 1, last + margin)][0], readings[first][0])
            for name, first, last in spans]


def water_flow() -> Series:
    """river's Water Flow with the anomalies its documentation names (see the module)."""
    from river.datasets import WaterFlow

    with open(WaterFlow().path, newline="") as f:
        rows = list(csv.reader(f))[1:]
    readings = [(_ms(stamp), float(value)) for stamp, value in rows]
    low = 0.9 * statistics.median(v for _, v in readings)
    spans: list[tuple[str, int, int]] = []
    for i, (_, v) in enumerate(readings):
        if v < low:
            if spans and spans[-1][2] == i - 1:
                spans[-1] = (spans[-1][0], spans[-1][1], i)
            else:
                spans.append((f"low value moment {len(spans) + 1}", i, i))
    peak = max(range(len(readings)), key=lambda i: readings[i][1])
    spans.append(("small peak", peak, peak))
    spans.sort(key=lambda s: s[1])
    return Series("water_flow", "flow_lps", readings, _windowed(readings, spans))


def nab(directory: Path, only: str | None) -> list[Series]:
    """Series in NAB's layout, with its combined windows."""
    windows_file = directory / "labels" / "combined_windows.json"
    if not windows_file.is_file():
        raise SystemExit(f"{windows_file} is missing: --nab takes a directory in NAB's layout "
                         "(a clone of github.com/numenta/NAB: data/ and labels/)")
    labels = json.loads(windows_file.read_text())
    found = []
    for key, windows in sorted(labels.items()):
        if only and only not in key:
            continue
        with (directory / "data" / key).open(newline="") as f:
            rows = list(csv.DictReader(f))
        readings = [(_ms(r["timestamp"]), float(r["value"])) for r in rows]
        anomalies = [Anomaly(f"window {i + 1}", _ms(a), _ms(b), _ms(a))
                     for i, (a, b) in enumerate(windows)]
        found.append(Series(Path(key).stem, "value", readings, anomalies))
    if not found:
        raise SystemExit(f"no series in {windows_file}"
                         + (f" matches {only!r}" if only else "") + ": check --nab and --only")
    return found


def write_events(series: Series, path: Path) -> None:
    """The series as contract JSONL, one source."""
    with path.open("w") as out:
        for seq, (ms, value) in enumerate(series.readings):
            out.write(json.dumps({"source_id": series.name, "event_time": ms, "seq": seq,
                                  "kind": "telemetry", "values": {series.value: value},
                                  "arrival_time": ms + ARRIVAL_MS}) + "\n")


def score(series: Series, found: list[tuple[str, str, int]]) -> dict:
    """Each anomaly's first alarm inside its window, and the alarms outside every one.
    ``found`` is (source, signal, decided event ms)."""
    rows = []
    for a in series.anomalies:
        inside = sorted((at, signal) for _, signal, at in found if a.start_ms <= at <= a.end_ms)
        first = inside[0] if inside else None
        rows.append({"anomaly": a.name, "found": first is not None,
                     "delay_h": None if first is None else (first[0] - a.first_ms) / HOUR_MS,
                     "signal": first[1] if first else None, "alarms": len(inside)})
    false = [(signal, at) for _, signal, at in found
             if not any(a.start_ms <= at <= a.end_ms for a in series.anomalies)]
    return {"series": series.name, "readings": len(series.readings), "anomalies": rows,
            "alarms": len(found), "false": len(false), "false_at": false}


def run(series: Series, directory: Path) -> dict:
    """Replay one series through the CLI into a fresh store, and score its alarms."""
    events = directory / f"{series.name}.jsonl"
    write_events(series, events)
    store = f"chdb://{(directory / f'{series.name}.store').resolve()}"
    done = subprocess.run([sys.executable, "-m", "flows.cli", "replay", str(events),
                           "--store", store, "-q"], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"replay of {events} failed: {done.stderr.strip()[-500:]}")
    # when an alarm was decided: a window is found by what an operator saw inside it
    decided = [alarm[:3] for alarm in alarms(store, at="event_time")]
    return score(series, decided)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nab", type=Path, help="a directory in NAB's layout")
    parser.add_argument("--only", help="with --nab: series whose name contains this")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    chosen = nab(args.nab, args.only) if args.nab else [water_flow()]
    with tempfile.TemporaryDirectory() as tmp:
        results = [run(s, Path(tmp)) for s in chosen]
    print(f"real annotated series through the CLI, {time.strftime('%Y-%m-%d')}; "
          f"machine: {json.dumps(machine())}")
    print("| series | anomaly | found | delay (h) | first signal | alarms in window |")
    print("|---|---|---|---:|---|---:|")
    for r in results:
        for a in r["anomalies"]:
            delay = "" if a["delay_h"] is None else f"{a['delay_h']:.1f}"
            print(f"| {r['series']} | {a['anomaly']} | {'yes' if a['found'] else 'no'} | "
                  f"{delay} | {a['signal'] or ''} | {a['alarms']} |")
    print("\n| series | readings | anomalies found | alarms | false (outside windows) |")
    print("|---|---:|---:|---:|---:|")
    for r in results:
        hit = sum(a["found"] for a in r["anomalies"])
        print(f"| {r['series']} | {r['readings']:,} | {hit} of {len(r['anomalies'])} | "
              f"{r['alarms']} | {r['false']} |")
    print(f"({time.perf_counter() - started:.1f} s)")
    return results


if __name__ == "__main__":
    main()
