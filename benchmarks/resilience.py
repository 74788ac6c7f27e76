"""Resilience measured on whole runs: memory under source churn, and store outages.

Each case runs ``lucidstream replay`` in its own process, samples that process's
resident memory (``/proc/PID/status``) every half second, and reads the store
afterwards. Cases:

* ``churn``: one hour of a fleet whose sources come and go (10,000 distinct, 500
  reporting at a time, every 5 s, each for 3 minutes): RSS through the run.
* ``steady``: the same hour with the same 500 sources throughout, for comparison.
* ``outage-30s``, ``outage-5min``, ``hang-30s``: a replay while the store fails every
  write (or lets each hang) for that long, injected around the real store
  (``LUCIDSTREAM_STORE_FAULT``): decisions stored against events, copies, the
  outage (or stall) alarm, peak RSS; ``no-fault`` is the same replay without one.
* ``alerts-ok``, ``alerts-hung``: the same replay without alerts and with a webhook
  that answers, or that never answers, in turns: the wall-time ratio.
* ``kafka-outage-30s``: a live run reading 200,000 events that a producer sends to the
  development broker at 4,000 events/s, while the store fails for 30 s: the same
  counts, the modes the run went through, RSS before and during the outage.

    python -m benchmarks.resilience [--only churn] [--json benchmarks/resilience.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_767_225_600_000


def churn_file(path: Path, sources: int = 10_000, active: int = 500, every_s: float = 5.0,
               hours: float = 1.0) -> int:
    """One hour of ``sources`` units, ``active`` reporting at any time."""
    rng = random.Random(1)
    life_s = 3600 * hours * active / sources
    events = []
    for i in range(sources):
        born = (3600 * hours - life_s) * i / (sources - 1) + rng.random() * every_s
        level, seq, t = rng.uniform(20, 80), 0, born
        while t < born + life_s:
            ms = T0 + int(t * 1000)
            events.append((ms, i, seq, level + rng.gauss(0, 1), rng.random()))
            seq, t = seq + 1, t + every_s
    events.sort()
    with open(path, "wb") as out:
        for ms, i, seq, temp, load in events:
            out.write(orjson.dumps({"source_id": f"unit-{i:05d}", "event_time": ms,
                                    "seq": seq, "arrival_time": ms + 20,
                                    "values": {"temp": round(temp, 3),
                                               "load": round(load, 3)}}) + b"\n")
    return len(events)


def fleet_file(path: Path, events: int) -> int:
    done = subprocess.run([sys.executable, "-m", "flows.cli", "simulate", "--out", str(path),
                           "--events", str(events), "--sources", "50"], cwd=ROOT,
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stderr)
    return events


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def replay(path: Path, store: str, env: dict[str, str] | None = None
           ) -> tuple[float, list[tuple[float, float]], str]:
    """Replay ``path`` into ``store``; wall seconds, (t, RSS MB) samples, stderr."""
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "flows.cli", "replay", str(path),
                             "--store", store, "--batch", "1000"], cwd=ROOT,
                            env={**os.environ, "LUCIDSTREAM_PROGRESS_S": "1", **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    samples: list[tuple[float, float]] = []
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr or []), daemon=True)
    reader.start()
    while proc.poll() is None:
        rss = _rss_mb(proc.pid)
        if rss is not None:
            samples.append((time.monotonic() - started, rss))
        time.sleep(0.5)
    reader.join(5)
    if proc.returncode:
        raise RuntimeError("".join(lines[-20:]))
    return time.monotonic() - started, samples, "".join(lines)


def query(store: str, sql: str) -> str:
    done = subprocess.run([sys.executable, "-m", "flows.cli", "query", sql, "--store", store,
                           "--format", "csv"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip().splitlines()[-1]


def at_share(samples: list[tuple[float, float]], share: float) -> float:
    return samples[min(len(samples) - 1, int(share * len(samples)))][1]


def _median(samples: list[tuple[float, float]], start: float, end: float) -> float:
    part = sorted(r for _, r in samples[int(start * len(samples)):int(end * len(samples)) or 1])
    return part[len(part) // 2]


def churn_case(work: Path, sources: int = 10_000) -> dict:
    name = "churn" if sources > 500 else "steady"
    path = work / f"{name}.jsonl"
    events = churn_file(path, sources=sources)
    store = f"chdb://{work}/{name}-store"
    wall, samples, _ = replay(path, store)
    decided = int(query(store, "SELECT count() FROM decisions FINAL WHERE path IN "
                               "('fast', 'fallback')"))
    quarter, end = at_share(samples, 0.25), samples[-1][1]
    return {"case": name, "sources": sources, "events": events, "decided": decided,
            "wall_s": round(wall, 1),
            "rss_mb": {f"{int(s * 100)}%": round(at_share(samples, s)) for s in
                       (0.1, 0.25, 0.5, 0.75, 1.0)},
            "growth_after_warmup_pct": round(100 * (end - quarter) / quarter, 1),
            # the trend without single samples: the last quarter's median RSS against
            # the second quarter's
            "median_q4_vs_q2_pct": round(100 * (_median(samples, 0.75, 1.0)
                                                / _median(samples, 0.25, 0.5) - 1), 1),
            "highest_after_warmup_pct": round(100 * (max(
                r for r in (at_share(samples, s / 100) for s in range(25, 101))) - quarter)
                / quarter, 1),
            "peak_mb": round(max(r for _, r in samples)),
            "peak_at_pct": round(100 * max(range(len(samples)), key=lambda i: samples[i][1])
                                 / len(samples))}


def outage_case(work: Path, name: str, fault: str, events: int = 300_000) -> dict:
    path = work / "fleet.jsonl"
    if not path.exists():
        fleet_file(path, events)
    store = f"chdb://{work}/{name}-store"
    wall, samples, said = replay(path, store, {"LUCIDSTREAM_STORE_FAULT": fault} if fault
                                 else None)
    row = query(store, "SELECT count(), uniqExact(decision_id) FROM decisions "
                       "WHERE path IN ('fast', 'fallback')").split(",")
    stored = int(query(store, "SELECT count() FROM decisions FINAL WHERE path IN "
                              "('fast', 'fallback')"))
    alarm = query(store, "SELECT count(), max(value) FROM drift_events FINAL "
                         "WHERE signal IN ('store_outage', 'store_stall')").split(",")
    before = [r for t, r in samples if t < 2]
    return {"case": name, "fault": fault, "events": events, "stored": stored,
            "raw_rows": int(row[0]), "distinct": int(row[1]),
            "outage_alarms": int(alarm[0]),
            "outage_s": round(float(alarm[1]), 1) if alarm[0] != "0" else None,
            "wall_s": round(wall, 1),
            "rss_before_mb": round(max(before)) if before else None,
            "rss_peak_mb": round(max(r for _, r in samples)),
            "down_lines": said.count("STORE DOWN")}


def kafka_outage_case(work: Path, events: int = 200_000, rate: int = 4_000) -> dict:
    """A live Kafka run fed at ``rate`` events/s while the store fails for 30 s."""
    import re
    import signal

    from flows.broker import start_broker
    from sinks.kafka import ensure_topic

    store, topic = f"chdb://{work}/kafka-store", "outage"
    with start_broker() as broker:
        ensure_topic({"bootstrap.servers": broker.bootstrap}, topic, 4)
        started = time.monotonic()
        flow = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "run", "--source", "kafka", "--kafka",
             broker.bootstrap, "--topic", topic, "--store", store, "--batch", "1000"],
            cwd=ROOT, env={**os.environ, "LUCIDSTREAM_PROGRESS_S": "1",
                           "LUCIDSTREAM_STORE_FAULT": "errors:30@15"},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        lines: list[tuple[float, str]] = []
        reader = threading.Thread(target=lambda: lines.extend(
            (time.monotonic() - started, line) for line in flow.stderr or []), daemon=True)
        reader.start()
        time.sleep(8)  # the flow starts (imports, store, consumer) before events flow
        producer = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "simulate", "--kafka", broker.bootstrap,
             "--topic", topic, "--events", str(events), "--rate", str(rate)], cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples: list[tuple[float, float]] = []
        seen = 0
        while flow.poll() is None and seen < events:
            rss = _rss_mb(flow.pid)
            if rss is not None:
                samples.append((time.monotonic() - started, rss))
            counts = [int(m.group(1).replace(",", "")) for _, line in lines[-5:]
                      if (m := re.match(r"events ([\d,]+)", line))]
            seen = max(counts, default=seen)
            time.sleep(0.5)
        producer.wait()
        flow.send_signal(signal.SIGINT)
        flow.wait(120)
        reader.join(5)
    down = [t for t, line in lines if "STORE DOWN" in line]
    before = [r for t, r in samples if down and t < down[0]]
    during = [r for t, r in samples if down and down[0] <= t <= down[-1]]
    row = query(store, "SELECT count(), uniqExact(decision_id) FROM decisions "
                       "WHERE path IN ('fast', 'fallback')").split(",")
    modes = query(store, "SELECT groupArray(to_mode) FROM (SELECT to_mode FROM "
                         "mode_changes FINAL ORDER BY at)")
    alarm = query(store, "SELECT count(), max(value) FROM drift_events FINAL "
                         "WHERE signal = 'store_outage'").split(",")
    return {"case": "kafka-outage-30s", "events": events, "rate": rate,
            "stored": int(query(store, "SELECT count() FROM decisions FINAL WHERE path IN "
                                       "('fast', 'fallback')")),
            "raw_rows": int(row[0]), "distinct": int(row[1]),
            "outage_alarms": int(alarm[0]),
            "outage_s": round(float(alarm[1]), 1) if alarm[0] != "0" else None,
            "down_lines": len(down), "modes": modes,
            "rss_before_outage_mb": round(max(before)) if before else None,
            "rss_during_outage_mb": round(max(during)) if during else None,
            "rss_peak_mb": round(max(r for _, r in samples)) if samples else None}


def alerts_case(work: Path, receiver: str, events: int = 300_000, rounds: int = 2) -> dict:
    """The same replay without alerts and with a webhook that answers (``ok``) or that
    accepts connections and never answers (``hung``), in turns; the fastest of each."""
    import http.server
    import socket

    path = work / "fleet.jsonl"
    if not path.exists():
        fleet_file(path, events)
    if receiver == "hung":  # listens, never accepts: every post times out
        server: Any = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(1000)
        port = server.getsockname()[1]
    else:
        class Quiet(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
        port = server.server_port
        threading.Thread(target=server.serve_forever, daemon=True).start()
    hook = {"LUCIDSTREAM_ALERT_WEBHOOK": f"http://127.0.0.1:{port}/hook",
            "LUCIDSTREAM_ALERT_FLUSH_S": "1"}
    walls: dict[str, list[float]] = {"without": [], "with": []}
    runs: dict[str, list[float]] = {"without": [], "with": []}
    for i in range(rounds):
        for label, env in (("without", None), ("with", hook)):
            store = f"chdb://{work}/alerts-{receiver}-{label}-{i}"
            wall, _, said = replay(path, store, env)
            walls[label].append(round(wall, 1))
            # the run's own time, as its summary gives it: before the wait for webhooks
            runs[label].append(round(float(query(store, "SELECT max(wall_seconds) FROM "
                                                        "runs")), 1))
    if receiver != "hung":
        server.shutdown()
    server.close() if receiver == "hung" else server.server_close()
    best, run_best = ({k: min(v) for k, v in d.items()} for d in (walls, runs))
    return {"case": f"alerts-{receiver}", "events": events,
            "run_without_s": runs["without"], "run_with_s": runs["with"],
            "run_with_over_without": round(run_best["with"] / run_best["without"], 3),
            "process_without_s": walls["without"], "process_with_s": walls["with"],
            "process_with_over_without": round(best["with"] / best["without"], 3),
            "alerts_line": next((x for x in said.splitlines() if x.startswith("alerts:")), "")}


CASES = {
    "churn": churn_case,
    # the same hour and rate with the same 500 sources throughout: what the run's
    # length alone does to memory (the store's parts, caches), for comparison
    "steady": lambda w: churn_case(w, sources=500),
    "no-fault": lambda w: outage_case(w, "no-fault", ""),
    "outage-30s": lambda w: outage_case(w, "outage-30s", "errors:30@2"),
    "hang-30s": lambda w: outage_case(w, "hang-30s", "hang:30@2"),
    "outage-5min": lambda w: outage_case(w, "outage-5min", "errors:300@2"),
    "kafka-outage-30s": kafka_outage_case,
    "alerts-ok": lambda w: alerts_case(w, "ok"),
    "alerts-hung": lambda w: alerts_case(w, "hung"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=list(CASES))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"machine: {machine}; {time.strftime('%Y-%m-%d')}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or list(CASES):
            result = CASES[name](Path(tmp))
            results.append(result)
            print(json.dumps(result), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "date": time.strftime("%Y-%m-%d"),
                                         "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
