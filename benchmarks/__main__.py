"""The benchmark suite: ``python -m benchmarks [--events 1000000]`` (``make bench``).

Runs every case of :mod:`benchmarks.cases` in its own process on the same
simulator data, in the same session, and prints one table (also written to
``benchmarks/results.json``) with the machine noted. The file cases (floor,
naive, full) and the Kafka replay (``kafka``, a backlog produced before each
round) run in turns, ``--rounds`` times: each keeps its fastest round, and the
ratios are also given per round, since this shared machine's speed drifts over
minutes. Times for ``floor``, ``naive``, ``full`` and ``kafka`` are the run's,
without the interpreter's start-up; ``kafka_cli`` (the same replay), ``cluster``
(2 processes) and ``live`` run the CLI and include it.
``live_half`` repeats ``live`` at half the rate for 30 s of events: the latency
of a flow that keeps up, beside the latency at the target rate. ``live_floor``
sends the same events at the target rate to a bare consumer: the broker's and the
producer's share of the live latency on this machine, which the flow adds to. ``CPU s`` is
the CPU time of a case's processes (start-up included, the broker excluded);
``cores`` divides it by their wall time: how much of the machine a case used;
``broker s`` is the local Kafka broker's CPU meanwhile (it shares the 2 cores).
The live cases also give their p99 per 10 s of event time: a flow that keeps up
holds it; one that falls behind shows it growing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.stages import machine
from flows.broker import start_broker

ROOT = Path(__file__).resolve().parents[1]


def process_cpu_s(process: subprocess.Popen | None) -> float | None:
    """CPU seconds a running process has used so far (Linux ``/proc``), else None."""
    if process is None:
        return None
    try:
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def run_case(case: str, store: str, broker: subprocess.Popen | None = None,
             **options: object) -> dict:
    """Run one case in its own process; with ``broker``, also the broker's CPU meanwhile."""
    broker_before = process_cpu_s(broker)
    args = [sys.executable, "-m", "benchmarks.cases", case, "--store", store]
    for key, value in options.items():
        args += [f"--{key}", str(value)]
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False)
    wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(f"case {case} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # CPU of the case's process and every process it waited for (a cluster's workers,
    # the live case's producer; not the broker), over the case process's whole life
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result.update(cpu_s=round(cpu, 1), cores=round(cpu / wall, 2))
    broker_after = process_cpu_s(broker)
    if broker_before is not None and broker_after is not None:
        result["broker_cpu_s"] = round(broker_after - broker_before, 1)
    return result


def silent_sources_state(sources: int = 10_000) -> dict:
    """State held for 10,000 sources that spoke and went silent, before and after
    their retirement (5 minutes of pipeline clock)."""
    from flows import fleet
    from operators.decider import Decider
    from operators.events import SensorEvent

    decider = Decider(fleet.POLICY, replay=True, drift=fleet.DRIFT)
    for i in range(120):  # past the drift warm-up, so every stream holds its detectors
        decider.process([SensorEvent(f"s{n}", i * 1000, {"v": float(i % 7), "w": float(n)},
                                     seq=i, arrival_ms=i * 1000 + 5) for n in range(sources)])
    before = (len(decider.freshness.sources), decider.drift.streams)
    decider.process([], tick_ms=120_000 + 400_000)
    after = (len(decider.freshness.sources), decider.drift.streams)
    return {"sources_before": before[0], "drift_streams_before": before[1],
            "sources_after": after[0], "drift_streams_after": after[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--live-rate", type=float, default=20_000)
    parser.add_argument("--skip", default="", help="comma-separated cases to skip")
    parser.add_argument("--rounds", type=int, default=2,
                        help="turns of the floor, naive and full cases (fastest kept)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results.json"),
                        help="where the JSON results go")
    args = parser.parse_args()
    n, skip = args.events, set(filter(None, args.skip.split(",")))
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "events.jsonl"
        small = Path(tmp) / "small.jsonl"
        for path, count in ((data, n), (small, n // 10)):
            subprocess.run([sys.executable, "-m", "flows.cli", "simulate", "--out", str(path),
                            "--events", str(count), "--rate", "5000", "--sources", "50"],
                           cwd=ROOT, check=True, stderr=subprocess.DEVNULL)
        # The file cases and the Kafka replay run in turns, `rounds` times: this shared
        # machine's speed drifts by tens of percent over minutes, so each case keeps its
        # fastest round (the one least disturbed) and each ratio is also taken within
        # every round.
        kafka_cases = {"kafka", "cluster", "live", "live_half", "live_floor"} - skip
        dev = start_broker() if kafka_cases else None
        try:
            rounds: dict[str, list[dict]] = {}
            for turn in range(args.rounds):
                for case in ("floor", "naive", "full", "kafka"):
                    if case in skip:
                        continue
                    store = f"chdb://{tmp}/{case}-{turn}"
                    if case == "kafka":
                        assert dev is not None
                        result = run_case(case, store, dev.process, kafka=dev.bootstrap,
                                          topic=produce_backlog(dev.bootstrap, case, n, turn))
                    else:
                        result = run_case(case, store, file=data)
                    rounds.setdefault(case, []).append(result)
                    print(case, turn + 1, result, flush=True)
            for case, runs in rounds.items():
                results[case] = dict(min(runs, key=lambda r: r["seconds"]), events=n,
                                     rounds=[r["seconds"] for r in runs])
            if "scaling" not in skip:
                results["full_small"] = run_case("full", f"chdb://{tmp}/small", file=small)
                results["full_small"]["events"] = n // 10
            if dev is not None:
                process, bootstrap = dev.process, dev.bootstrap
                # a cluster against the same job from one process, both run by the CLI
                # (start-up included): the cost of spreading the job over processes
                for case in ("kafka_cli", "cluster"):
                    if "cluster" not in skip:
                        results[case] = run_case(case, f"chdb://{tmp}/{case}", process,
                                                 kafka=bootstrap,
                                                 topic=produce_backlog(bootstrap, case, n))
                        results[case]["events"] = n
                        print(case, results[case], flush=True)
                if "live" not in skip:
                    results["live"] = run_case("live", f"chdb://{tmp}/live", process,
                                               kafka=bootstrap, topic="live", rate=args.live_rate,
                                               events=n)
                    results["live"]["events"] = n
                    results["live"]["rate"] = args.live_rate
                if "live_floor" not in skip:
                    results["live_floor"] = run_case("live_floor", f"chdb://{tmp}/unused",
                                                     process, kafka=bootstrap,
                                                     topic="live_floor", rate=args.live_rate,
                                                     events=n)
                    results["live_floor"].update(events=n, rate=args.live_rate)
                if "live_half" not in skip:
                    # the same at half the rate: latency when the flow keeps up
                    rate, count = args.live_rate / 2, min(n, int(args.live_rate / 2 * 30))
                    results["live_half"] = run_case("live", f"chdb://{tmp}/live_half", process,
                                                    kafka=bootstrap, topic="live_half",
                                                    rate=rate, events=count)
                    results["live_half"].update(events=count, rate=rate)
        finally:
            if dev is not None:
                dev.stop()
    if "state" not in skip:
        results["silent_state"] = silent_sources_state()
    report(results, args.out)


def produce_backlog(bootstrap: str, case: str, events: int, turn: int = 0) -> str:
    """A topic of ``events`` simulated events on 4 partitions, produced just before the
    case that reads it (on the live clock a backlog's age decides how stale its decisions
    are, and so the mode and the work done); returns its name."""
    topic = f"bench-{case}-{turn}"
    subprocess.run([sys.executable, "-m", "flows.cli", "simulate", "--kafka", bootstrap,
                    "--topic", topic, "--partitions", "4", "--events", str(events)],
                   cwd=ROOT, check=True, stderr=subprocess.DEVNULL)
    return topic


def report(results: dict[str, dict], out: Path) -> None:
    print(f"\nlucidstream benchmarks, {time.strftime('%Y-%m-%d')}; machine: "
          f"{json.dumps(machine())}")
    print(f"{'case':10} {'events':>10} {'seconds':>8} {'events/s':>10} {'peak RSS MB':>12} "
          f"{'CPU s':>7} {'cores':>6} {'broker s':>9}")
    for case, r in results.items():
        if "seconds" in r:
            rate = r["events"] / r["seconds"]
            r["events_per_s"] = round(rate)
            broker = f"{r['broker_cpu_s']:9.1f}" if "broker_cpu_s" in r else f"{'':9}"
            print(f"{case:10} {r['events']:10,} {r['seconds']:8.1f} {rate:10,.0f} "
                  f"{r['peak_rss_mb']:12,.0f} {r['cpu_s']:7.1f} {r['cores']:6.2f} {broker}")
    ratios = {}
    def ratio(a: str, b: str) -> float | None:
        if a in results and b in results:
            return round(results[a]["events_per_s"] / results[b]["events_per_s"], 2)
        return None
    ratios["full/floor"] = ratio("full", "floor")
    ratios["full/naive"] = ratio("full", "naive")
    ratios["kafka/full"] = ratio("kafka", "full")
    for a, b in (("full", "floor"), ("full", "naive"), ("kafka", "full")):
        if "rounds" in results.get(a, {}) and "rounds" in results.get(b, {}):
            ratios[f"{a}/{b} per round"] = [round(y / x, 2) for x, y in
                                            zip(results[a]["rounds"], results[b]["rounds"],
                                                strict=True)]
    ratios["cluster/kafka_cli"] = ratio("cluster", "kafka_cli")
    if "full" in results and "full_small" in results:
        per_big = results["full"]["seconds"] / results["full"]["events"] * 1e6
        per_small = results["full_small"]["seconds"] / results["full_small"]["events"] * 1e6
        ratios["us/event 1M vs 100k"] = f"{per_big:.1f} vs {per_small:.1f}"
    print("ratios:", json.dumps(ratios))
    targets = _targets(results)
    if targets:
        print(f"{'target':48} {'measured':>16}  met")
        for name, measured, met in targets:
            print(f"{name:48} {measured:>16}  {'yes' if met else 'NO'}")
    for case in ("live", "live_half"):
        if case in results:
            live = results[case]
            print(f"{case} at {live['rate']:,.0f} events/s: event-to-decision latency p50 "
                  f"{live['p50_ms']:.0f} ms, p99 {live['p99_ms']:.0f} ms, max "
                  f"{live['max_ms']:.0f} ms over {live['decisions']:,} decisions; p99 per "
                  f"10 s: {live['p99_ms_per_10s']}")
    if "live_floor" in results:
        floor = results["live_floor"]
        print(f"live_floor at {floor['rate']:,.0f} events/s: event time to a bare consumer's "
              f"poll p50 {floor['p50_ms']:.0f} ms, p99 {floor['p99_ms']:.0f} ms, max "
              f"{floor['max_ms']:.0f} ms over {floor['messages']:,} messages; p99 per 10 s: "
              f"{floor['p99_ms_per_10s']} (the broker and the producer, without the flow)")
    if "silent_state" in results:
        print("10,000 silent sources:", json.dumps(results["silent_state"]))
    results["ratios"] = ratios  # type: ignore[assignment]
    results["machine"] = machine()
    out.write_text(json.dumps(results, indent=2))


def _targets(results: dict[str, dict]) -> list[tuple[str, str, bool]]:
    """Each target of the columnar decide path that this run measured: (target, the
    figure, met)."""
    found = []

    def rate(case: str) -> float | None:
        return results[case].get("events_per_s") if case in results else None

    def cpu_per_event(case: str) -> float | None:
        r = results.get(case, {})
        return r["cpu_s"] / r["events"] * 1e6 if "cpu_s" in r else None

    full, floor, naive, kafka = rate("full"), rate("floor"), rate("naive"), rate("kafka")
    if full is not None:
        found.append(("full flow from a file >= 100,000 events/s", f"{full:,.0f}",
                      full >= 100_000))
    if full and floor:
        found.append(("full / floor >= 0.8", f"{full / floor:.2f}", full / floor >= 0.8))
    if full and naive:
        found.append(("full / naive >= 5", f"{full / naive:.2f}", full / naive >= 5))
    if full and kafka:
        found.append(("Kafka replay, 1 process / file >= 0.8", f"{kafka / full:.2f}",
                      kafka / full >= 0.8))
    one, two = cpu_per_event("kafka_cli"), cpu_per_event("cluster")
    if one and two:
        found.append(("2 processes: CPU per event <= 1.15x one", f"{two / one:.2f}x",
                      two / one <= 1.15))
    if "live" in results:
        p99 = results["live"]["p99_ms"]
        found.append((f"live at {results['live']['rate']:,.0f}/s: p99 <= 100 ms",
                      f"{p99:,.0f} ms", p99 <= 100))
    peaks = [results[c]["peak_rss_mb"] for c in ("full", "kafka", "kafka_cli", "cluster", "live")
             if c in results and "peak_rss_mb" in results[c]]
    if peaks:
        found.append(("peak RSS <= 1,024 MB (MiB) at 1M", f"{max(peaks):,.0f} MB",
                      max(peaks) <= 1_024))
    big, small = cpu_per_event("full"), cpu_per_event("full_small")
    if big and small:
        found.append(("CPU per event flat 100k -> 1M (1M <= 1.1x 100k)",
                      f"{small:.1f} -> {big:.1f} us", big <= 1.1 * small))
    return found


if __name__ == "__main__":
    main()
