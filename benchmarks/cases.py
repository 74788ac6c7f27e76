"""One benchmark case per call, run in a fresh process: ``python -m benchmarks.cases``.

Each case prints one JSON line: events, seconds, events/s and the process's
peak RSS. The runner (``python -m benchmarks``) starts every case in its own
process so RSS and the embedded store's one-path-per-process rule stay clean.

Cases:
  floor    file -> decode -> ClickHouse insert, nothing else (batched, by hand)
  naive    the per-event Bytewax flow a tutorial would write: json.loads, a river
           model and an ADWIN detector per event, a row per decision
  full     the reference fleet flow from a file, everything on
  kafka    the reference flow replaying a backlog from a local Kafka-protocol broker,
           timed as ``full`` is (the run, not the interpreter's start-up)
  kafka_cli  the same run by the CLI (lucidstream run), start-up included
  cluster  the same from Kafka as 2 processes (lucidstream run --processes 2)
  live     simulator -> Kafka at a fixed rate with event_time = send time, flow
           running; event-to-decision latency from the stored decisions
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flows.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def floor(path: str, store: str) -> dict:
    import bytewax.operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.testing import run_main

    from flows.sources import JSONLSource
    from operators.events import EventDecoder
    from operators.records import Rows
    from sinks.clickhouse import EmbeddedStoreSink
    from sinks.store import open_store

    with open_store(store) as s:
        s.command("CREATE TABLE IF NOT EXISTS bench_events (source_id String, event_time "
                  "DateTime64(3, 'UTC'), seq Nullable(UInt64), values Map(String, Float64)) "
                  "ENGINE = MergeTree ORDER BY (source_id, event_time)")
    decoder = EventDecoder()
    columns = ("source_id", "event_time", "seq", "values")

    def to_rows(batch):  # type: ignore[no-untyped-def]
        events = decoder.decode_batch(batch.records).events
        return ("store", Rows("bench_events", columns,
                              [(e.source_id, e.event_ms, e.seq, e.values) for e in events]))

    flow = Dataflow("floor")
    rows = op.map("decode", op.input("in", flow, JSONLSource(path)), to_rows)
    op.output("out", rows, EmbeddedStoreSink(store))
    started = time.perf_counter()
    run_main(flow)
    return {"seconds": time.perf_counter() - started}


def naive(path: str, store: str) -> dict:
    import json as stdjson

    import bytewax.operators as op
    from bytewax.connectors.files import FileSource
    from bytewax.dataflow import Dataflow
    from bytewax.outputs import DynamicSink, StatelessSinkPartition
    from bytewax.testing import run_main
    from river import drift, linear_model, preprocessing

    from sinks.store import open_store

    with open_store(store) as s:
        s.command("CREATE TABLE IF NOT EXISTS naive_decisions (decision_id String, source_id "
                  "String, action String, score Float64, drift Bool) ENGINE = MergeTree "
                  "ORDER BY decision_id")

    class Sink(DynamicSink):  # type: ignore[type-arg]
        def build(self, step_id, worker_index, worker_count):  # type: ignore[no-untyped-def]
            handle = open_store(store)

            class Part(StatelessSinkPartition):  # type: ignore[type-arg]
                def write_batch(self, items):  # type: ignore[no-untyped-def]
                    handle.client_insert("naive_decisions", items)
            return Part()

    def parse(line):  # type: ignore[no-untyped-def]
        try:
            return stdjson.loads(line)
        except ValueError:
            return None

    def decide(state, event):  # type: ignore[no-untyped-def]
        if state is None:
            state = (preprocessing.StandardScaler() | linear_model.LogisticRegression(),
                     drift.ADWIN())
        model, detector = state
        x = event["values"]
        score = model.predict_proba_one(x).get(True, 0.5)
        label = x.get("battery", 100) < 15 or x.get("obstacle_m", 10) < 0.5
        model.learn_one(x, label)
        detector.update(score)
        action = "return_to_base" if x.get("battery", 100) < 15 else "continue"
        row = (f"{event['source_id']}:{event.get('seq')}", event["source_id"], action, score,
               detector.drift_detected)
        return state, row

    flow = Dataflow("naive")
    lines = op.input("in", flow, FileSource(path))
    events = op.filter_map("parse", lines, parse)
    keyed = op.key_on("key", events, lambda e: e["source_id"])
    rows = op.key_rm("unkey", op.stateful_map("decide", keyed, decide))
    op.output("out", rows, Sink())
    started = time.perf_counter()
    run_main(flow)
    return {"seconds": time.perf_counter() - started}


def full_in_process(path: str, store: str) -> dict:
    from flows.config import RunConfig

    return timed_run(RunConfig(store=store, input=path, replay=True))


def kafka_in_process(kafka: str, topic: str, store: str) -> dict:
    """The reference flow replaying ``topic`` on the pipeline clock to its end: what
    ``lucidstream run --source kafka --replay --stop-at-end`` runs, timed as
    :func:`full_in_process` times the file case."""
    from flows.config import RunConfig

    return timed_run(RunConfig(store=store, input="kafka", kafka=kafka, topic=topic,
                               replay=True, stop_at_end=True))


def timed_run(config: RunConfig) -> dict:
    """Run the reference flow of ``config`` in this process: its
    seconds, and how many events it decided (their fast or fallback decisions, one an
    event, counted in the store after the clock stops)."""
    from bytewax.testing import run_main

    from flows import fleet
    from flows.telemetry import Telemetry
    from sinks.store import open_store

    flow = fleet.get_flow(config, Telemetry())
    started = time.perf_counter()
    run_main(flow)
    seconds = time.perf_counter() - started
    decided = open_store(config.store).scalar(
        "SELECT count() FROM decisions FINAL WHERE path IN ('fast', 'fallback')")
    return {"seconds": seconds, "decided": int(decided)}


def kafka_cli(kafka: str, topic: str, store: str, processes: int = 1) -> dict:
    """``lucidstream run`` replaying ``topic`` on the pipeline clock, as ``processes``
    processes, timed from outside (start-up included)."""
    args = [sys.executable, "-m", "flows.cli", "run", "--store", store, "--quiet",
            "--source", "kafka", "--kafka", kafka, "--topic", topic, "--stop-at-end",
            "--replay"]
    if processes > 1:
        args += ["--processes", str(processes)]
    started = time.perf_counter()
    subprocess.run(args, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return {"seconds": time.perf_counter() - started}


# The live producer's linger: the development broker's in-memory storage costs more per
# produce request as a partition grows, and the simulator's default (5 ms) sends four
# times the requests (RESULTS.md, "Settings measured"). The linger counts against the
# flow: event_time is stamped before it.
LIVE_LINGER_MS = 20


def produce_live(kafka: str, topic: str, rate: float, events: int) -> None:
    """The live cases' producer: ``events`` simulated events at ``rate`` a second."""
    subprocess.run([sys.executable, "-m", "flows.cli", "simulate", "--kafka", kafka, "--topic",
                    topic, "--events", str(events), "--rate", str(rate), "--kafka-opt",
                    f"linger.ms={LIVE_LINGER_MS}"], cwd=ROOT, check=True,
                   stderr=subprocess.DEVNULL)


def live(kafka: str, topic: str, store: str, rate: float, events: int) -> dict:
    from flows.broker import die_with_parent
    from sinks.kafka import ensure_topic

    ensure_topic({"bootstrap.servers": kafka}, topic, 4)
    flow = subprocess.Popen([sys.executable, "-m", "flows.cli", "run", "--source", "kafka",
                             "--kafka", kafka, "--topic", topic, "--store", store, "--quiet",
                             "--events", str(events)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            preexec_fn=die_with_parent)
    time.sleep(8)  # let the flow start (imports, store, consumer) before producing
    started = time.perf_counter()
    produce_live(kafka, topic, rate, events)
    if flow.wait() != 0:
        raise SystemExit("the live flow failed")
    return {"seconds": time.perf_counter() - started}


def live_floor(kafka: str, topic: str, rate: float, events: int, window_s: int = 10) -> dict:
    """The broker's and the producer's share of the live case's latency on this machine:
    the same producer at the same rate, read by a bare consumer that polls as the flow's
    source does (every 10 ms, fetches waiting 10 ms) and only reads each message's event
    time against its arrival. The live case cannot go below it here."""
    import threading

    import numpy as np
    import orjson
    from confluent_kafka import Consumer, TopicPartition

    from sinks.kafka import ensure_topic

    ensure_topic({"bootstrap.servers": kafka}, topic, 4)
    consumer = Consumer({"bootstrap.servers": kafka, "group.id": "bench-live-floor",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 10,
                         "queued.max.messages.kbytes": 8_192})
    consumer.assign([TopicPartition(topic, partition, 0) for partition in range(4)])
    seen: list[tuple[int, float]] = []  # (event time, ms from it to the poll that read it)
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set() and len(seen) < events:
            for message in consumer.consume(2_000, timeout=0.01):
                if message.error() is None:
                    now = time.time() * 1000
                    at = orjson.loads(message.value())["event_time"]
                    seen.append((at, now - at))

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    started = time.perf_counter()
    produce_live(kafka, topic, rate, events)
    reader.join(timeout=60)
    stop.set()
    reader.join()
    seconds = time.perf_counter() - started
    consumer.close()
    if not seen:
        raise SystemExit("the bare consumer read nothing from the live topic")
    at, ms = np.array([s[0] for s in seen]), np.array([s[1] for s in seen])
    window = (at - at.min()) // (window_s * 1000)
    return {"seconds": seconds, "messages": len(seen), "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max()),
            f"p99_ms_per_{window_s}s": [round(float(np.percentile(ms[window == w], 99)))
                                        for w in np.unique(window)]}


def latency(store: str, window_s: int = 10) -> dict:
    """Event-to-decision latency of the stored decisions, overall and its p99 per
    ``window_s`` seconds of event time (does it hold, or grow over the run?)."""
    from sinks.store import open_store

    decided = "FROM decisions WHERE path IN ('fast', 'fallback')"
    with open_store(store) as s:
        row = s.query(f"SELECT quantile(0.5)(age_ms), quantile(0.99)(age_ms), max(age_ms), "
                      f"count() {decided}")[1][0]
        windows = s.query(f"SELECT intDiv(toUnixTimestamp64Milli(event_time) - (SELECT "
                          f"min(toUnixTimestamp64Milli(event_time)) {decided}), "
                          f"{window_s * 1000}) AS w, quantile(0.99)(age_ms) {decided} "
                          "GROUP BY w ORDER BY w")[1]
    return {"p50_ms": row[0], "p99_ms": row[1], "max_ms": row[2], "decisions": row[3],
            f"p99_ms_per_{window_s}s": [round(p99) for _, p99 in windows]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("case")
    parser.add_argument("--file")
    parser.add_argument("--store", required=True)
    parser.add_argument("--events", type=int, default=0)
    parser.add_argument("--kafka")
    parser.add_argument("--topic")
    parser.add_argument("--rate", type=float, default=20_000)
    args = parser.parse_args()
    if args.case == "floor":
        result = floor(args.file, args.store)
    elif args.case == "naive":
        result = naive(args.file, args.store)
    elif args.case == "full":
        result = full_in_process(args.file, args.store)
    elif args.case == "kafka":
        result = kafka_in_process(args.kafka, args.topic, args.store)
    elif args.case == "kafka_cli":
        result = kafka_cli(args.kafka, args.topic, args.store)
    elif args.case == "cluster":
        result = kafka_cli(args.kafka, args.topic, args.store, processes=2)
    elif args.case == "live":
        result = live(args.kafka, args.topic, args.store, args.rate, args.events)
        result.update(latency(args.store))
    elif args.case == "live_floor":
        result = live_floor(args.kafka, args.topic, args.rate, args.events)
    else:
        raise SystemExit(f"unknown case {args.case!r}")
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    print(json.dumps(result), flush=True)
    os._exit(0)  # skip interpreter teardown of the embedded store


if __name__ == "__main__":
    main()
