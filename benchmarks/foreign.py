"""A clean stream from another generator: ``python -m benchmarks.foreign``.

The fleet simulator is what the detectors were built beside; this stream is not.
Pumps at 2 Hz report a pressure that wanders (kPa), a flow that follows it (l/min,
clipped at 0 when the pump stands still), a temperature in whole degrees that
wanders over minutes, a heavy-tailed vibration and a 0/1 running state; each pump
starts or stops about every 15 minutes, which moves every value at once. Nothing
else happens: no sensor is stuck, no value drifts. A start or a stop is a real
change of level, so an alarm within 60 s of one on that pump is the stream's own;
every other alarm is false. The replay goes through the CLI into a fresh embedded
store, and the alarms are read from ``drift_events`` as an operator would.

Prints, per seed: the starts and stops, how many of them an alarm saw, and the false
alarms by signal; and the slow path's windows, how many it revised to ``inspect``, how
many of those no start or stop of the pump within 60 s explains, and how many slow
decisions were rejected against a newer state. Writes nothing else.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from benchmarks.stages import machine
from flows.scoring import MODEL_SIGNALS

START_MS = 1_767_225_600_000
NEAR_MS = 60_000  # an alarm this close to its pump's start or stop is the stream's own


def write_pumps(path: Path, seed: int, minutes: float, pumps: int = 12, hz: int = 2) -> None:
    """The stream, as contract JSONL (``arrival_time`` stamped)."""
    rng = np.random.default_rng(seed)
    press, temp = np.zeros(pumps), np.zeros(pumps)
    running = np.ones(pumps, dtype=bool)
    level = rng.uniform(280, 320, pumps)
    with path.open("w") as out:
        for k in range(int(minutes * 60 * hz)):
            press = 0.98 * press + rng.normal(0, 0.8, pumps)
            running ^= rng.random(pumps) < 1 / (hz * 900)  # a start or stop every ~15 min
            p = level + press - (~running) * 250
            flow = np.where(running, 0.4 * p + rng.normal(0, 1.5, pumps),
                            rng.normal(0, 0.2, pumps)).clip(0)
            temp = 0.999 * temp + rng.normal(0, 0.05, pumps)
            whole = np.round(40 + 15 * running + temp)
            vib = np.abs(rng.standard_t(3, pumps)) * 0.4 + 1.0 * running
            for i in range(pumps):
                ms = START_MS + int(k * 1000 / hz) + int(rng.integers(0, 50))
                out.write(json.dumps({
                    "source_id": f"pump-{i:02d}", "event_time": ms, "seq": k,
                    "kind": "telemetry",
                    "values": {"pressure_kpa": round(float(p[i]), 1),
                               "flow_lpm": round(float(flow[i]), 1),
                               "temp_c": float(whole[i]),
                               "vibration_mm_s": round(float(vib[i]), 2),
                               "running": int(running[i])},
                    "arrival_time": ms + 5 + int(rng.integers(0, 30))}) + "\n")


def write_mixed_rates(path: Path, seed: int, minutes: float) -> None:
    """Another clean stream, of sources at many rates: ten at 10 Hz, three reporting once
    a minute and two in bursts (50 readings in a second, every two minutes), each a
    level with noise; nothing happens in it (contract JSONL, ``arrival_time`` stamped)."""
    rng = np.random.default_rng(seed)
    span = int(minutes * 60_000)
    reports = [(k * 100 + i, f"fast-{i}", 50.0, 2.0) for i in range(10)
               for k in range(span // 100)]
    reports += [(k * 60_000 + 7_000 * i, f"minute-{i}", 10.0, 1.0) for i in range(3)
                for k in range(span // 60_000)]
    reports += [(b * 120_000 + k * 20 + 500 * i, f"burst-{i}", 5.0, 0.5) for i in range(2)
                for b in range(span // 120_000) for k in range(50)]
    seqs: dict[str, int] = {}
    with path.open("w") as out:
        for at, source, level, sd in sorted(reports):
            seqs[source] = seqs.get(source, -1) + 1
            ms = START_MS + at
            out.write(json.dumps({
                "source_id": source, "event_time": ms, "seq": seqs[source],
                "values": {"level": round(float(rng.normal(level, sd)), 3)},
                "arrival_time": ms + 20 + int(rng.integers(0, 30))}) + "\n")


def write_meters(path: Path, seed: int, minutes: float, meters: int = 12, hz: int = 2) -> None:
    """A third clean stream: energy meters, each a power that wanders (kW) and the
    cumulative energy it adds up to (kWh, a counter that only climbs)."""
    rng = np.random.default_rng(seed)
    energy, load = rng.uniform(1_000, 5_000, meters), np.zeros(meters)
    with path.open("w") as out:
        for k in range(int(minutes * 60 * hz)):
            load = 0.95 * load + rng.normal(0, 0.3, meters)
            power = np.maximum(0.0, 3.0 + load)
            energy += power / (3_600 * hz)
            for i in range(meters):
                ms = START_MS + int(k * 1000 / hz) + int(rng.integers(0, 40))
                out.write(json.dumps({
                    "source_id": f"meter-{i:02d}", "event_time": ms, "seq": k,
                    "values": {"energy_kwh": round(float(energy[i]), 4),
                               "power_kw": round(float(power[i]), 3)},
                    "arrival_time": ms + 15}) + "\n")


def starts_and_stops(path: Path) -> dict[str, list[int]]:
    """Each pump's starts and stops (event ms), read back from the stream."""
    flips: dict[str, list[int]] = defaultdict(list)
    last: dict[str, int] = {}
    for line in path.open():
        e = json.loads(line)
        source, state = e["source_id"], e["values"]["running"]
        if source in last and last[source] != state:
            flips[source].append(e["event_time"])
        last[source] = state
    return flips


def query(store: str, sql: str) -> list[dict]:
    """Rows of ``sql`` read with ``lucidstream query`` in its own process (an embedded
    store admits one path per process)."""
    done = subprocess.run([sys.executable, "-m", "flows.cli", "query", sql, "--store", store,
                           "--format", "json"], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"reading {store} failed: {done.stderr.strip()[-500:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def alarms(store: str, at: str = "ifNull(onset_time, event_time)"
           ) -> list[tuple[str, str, int, set[str]]]:
    """(source, signal, ms, peers) of every alarm, the ms being ``at`` (by default its
    onset, or when it was decided) and the peers the sources it names as judged with (a
    shard's, for the model's signals)."""
    rows = query(store, f"SELECT source_id, signal, toUnixTimestamp64Milli({at}) AS at, "
                        "JSONExtract(details, 'peers', 'Array(String)') AS peers "
                        "FROM drift_events FINAL")
    return [(r["source_id"], r["signal"], int(r["at"]), set(r["peers"])) for r in rows]


def revisions(store: str) -> tuple[int, list[tuple[str, int]], int]:
    """The slow path's windows, the (source, window start ms) of those it revised, and
    how many of its decisions were rejected."""
    rows = query(store, "SELECT source_id, toInt64(splitByChar('-', splitByChar(':', "
                        "origin)[2])[1]) AS start, reason LIKE '% revises %' AS revised, "
                        "reason LIKE '%; rejected:%' AS rejected "
                        "FROM decisions FINAL WHERE path = 'slow'")
    revised = [(r["source_id"], int(r["start"])) for r in rows if r["revised"]]
    return len(rows), revised, sum(1 for r in rows if r["rejected"])


def score(events: Path, store: str) -> dict:
    """Starts and stops seen, and the false alarms by signal, from ``drift_events``."""
    flips = starts_and_stops(events)
    rows = alarms(store)
    false: Counter[str] = Counter()
    seen = set()
    for source, signal, at, peers in rows:
        # the model's scores are a mean over its shard's decisions (source_id empty, the
        # shard's sources its peers): a peer's start or stop moves them by its share
        near = [(s, t) for s in (peers if signal in MODEL_SIGNALS else (source,))
                for t in flips.get(s, []) if abs(at - t) <= NEAR_MS]
        if near and not signal.startswith("frozen:"):
            seen.update(near)
        else:
            false[signal] += 1
    total = sum(len(v) for v in flips.values())
    windows, revised, rejected = revisions(store)
    # a window is revised for its pump's start or stop when one falls within NEAR_MS of it
    unexplained = [(s, t) for s, t in revised
                   if not any(abs(t - flip) <= NEAR_MS for flip in flips.get(s, []))]
    return {"starts_stops": total, "seen": len(seen), "alarms": len(rows),
            "false": sum(false.values()), "false_by_signal": dict(false.most_common()),
            "slow_windows": windows, "slow_revised": len(revised),
            "slow_unexplained": len(unexplained), "slow_rejected": rejected}


def run(seed: int, minutes: float, directory: Path) -> dict:
    """Write one stream, replay it through the CLI into a fresh store, score it."""
    events = directory / f"pumps-{seed}.jsonl"
    write_pumps(events, seed, minutes)
    store = replay(events)
    return {"seed": seed, "minutes": minutes, **score(events, store)}


def replay(events: Path) -> str:
    """Replay ``events`` through the CLI into a fresh embedded store beside them; its DSN."""
    store = f"chdb://{events.with_suffix('.store').resolve()}"
    done = subprocess.run([sys.executable, "-m", "flows.cli", "replay", str(events),
                           "--store", store, "-q"], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"replay of {events} failed: {done.stderr.strip()[-500:]}")
    return store


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated")
    parser.add_argument("--minutes", type=float, default=60.0)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        results = [run(int(s), args.minutes, Path(tmp)) for s in args.seeds.split(",")]
    print(f"a clean stream from another generator (12 pumps at 2 Hz, {args.minutes:g} min), "
          f"{time.strftime('%Y-%m-%d')}; machine: {json.dumps(machine())}")
    print("| seed | starts and stops | seen by an alarm | alarms | false | false by signal "
          "| slow windows | revised | revised, unexplained | rejected |")
    print("|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['seed']} | {r['starts_stops']} | {r['seen']} | {r['alarms']} | "
              f"{r['false']} | {r['false_by_signal'] or ''} | {r['slow_windows']} | "
              f"{r['slow_revised']} | {r['slow_unexplained']} | {r['slow_rejected']} |")
    print(f"({time.perf_counter() - started:.1f} s)")
    return results


if __name__ == "__main__":
    main()
