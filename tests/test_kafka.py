"""Kafka in and out against a real Kafka-protocol broker on loopback."""

from __future__ import annotations

import re
import signal
import time
import uuid

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from flows.broker import broker_for_tests, free_port, start_broker
from sinks.kafka import ensure_topic
from tests.conftest import cli, query_scalar
from tests.watch import Watched

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="session")
def broker():
    b = broker_for_tests()
    yield b
    b.stop()


def topic_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def produce(bootstrap: str, topic: str, events: int, partitions: int = 4) -> None:
    result = cli("simulate", "--kafka", bootstrap, "--topic", topic, "--events", str(events),
                 "--partitions", str(partitions), "--sources", "40")
    assert result.returncode == 0, result.stderr


def run_args(bootstrap, topic, store, *extra):
    return ("run", "--source", "kafka", "--kafka", bootstrap, "--topic", topic,
            "--store", store, "--stop-at-end", "--quiet", *extra)


def test_round_trip_carries_every_event_and_the_trace_headers(broker, tmp_path):
    topic, out = topic_name("rt"), topic_name("decisions")
    produce(broker.bootstrap, topic, 3_000)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    traces = {}
    for i in range(50):
        trace = uuid.uuid4().hex
        traces[f"traced-{i}"] = trace
        event = {"source_id": f"traced-{i}", "event_time": int(time.time() * 1000), "seq": 1,
                 "values": {"battery": 50.0}}
        producer.produce(topic, orjson.dumps(event), headers=[
            ("traceparent", f"00-{trace}-{uuid.uuid4().hex[:16]}-01".encode())])
    producer.produce(topic, b"{broken")
    assert producer.flush(10) == 0
    dsn = f"chdb://{tmp_path}/store"
    result = cli(*run_args(broker.bootstrap, topic, dsn, "--emit-kafka",
                           "--decisions-topic", out))
    assert result.returncode == 0, result.stderr
    assert int(query_scalar(dsn, "SELECT count() FROM decisions FINAL "
                                 "WHERE path IN ('fast', 'fallback')")) == 3_050
    stored = query_scalar(dsn, "SELECT count() FROM decisions FINAL WHERE "
                               "startsWith(source_id, 'traced-') AND trace_id = "
                               "transform(source_id, [" + ",".join(
                                   f"'{k}'" for k in traces) + "], [" + ",".join(
                                   f"'{v}'" for v in traces.values()) + "], '')")
    assert int(stored) == 50
    origin = query_scalar(dsn, "SELECT origin FROM dead_letters")
    assert re.fullmatch(rf"kafka:{topic}/\d+/\d+", origin)

    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "check",
                         "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(out, 0, OFFSET_BEGINNING)])  # created with 1 partition
    seen, headers_ok, deadline = 0, 0, time.monotonic() + 30
    while seen < 3_050 and time.monotonic() < deadline:
        for msg in consumer.consume(1000, timeout=1):
            if msg.error():
                continue
            record = orjson.loads(msg.value())
            if record["source_id"] in traces or record["source_id"].startswith("robot"):
                seen += 1
                header = dict(msg.headers() or [])["traceparent"].decode()
                headers_ok += header.split("-")[1] == record["trace_id"]
    consumer.close()
    assert seen >= 3_050 and headers_ok == seen


def test_broker_gone_at_start_is_one_line_and_exit_1(tmp_path):
    started = time.monotonic()
    result = cli("run", "--source", "kafka", "--kafka", f"127.0.0.1:{free_port()}",
                 "--store", f"chdb://{tmp_path}/s")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach Kafka" in lines[0], result.stderr
    assert time.monotonic() - started < 30


def test_missing_topic_is_a_clear_error(broker, tmp_path):
    result = cli("run", "--source", "kafka", "--kafka", broker.bootstrap, "--topic",
                 "no-such-topic", "--store", f"chdb://{tmp_path}/s")
    assert result.returncode == 1 and "does not exist" in result.stderr


@pytest.mark.parametrize("clock", ["live", "replay"])
def test_sigkill_twice_then_restart_decides_every_event_exactly_once(broker, tmp_path, clock):
    """Live: each partition resumes from its snapshot's offset; replayed: each from its
    first record not yet handed on when the snapshot was taken."""
    topic, n = topic_name("crash"), 50_000
    produce(broker.bootstrap, topic, n)
    dsn, recovery = f"chdb://{tmp_path}/store", str(tmp_path / "recovery")
    args = run_args(broker.bootstrap, topic, dsn, "--recovery-dir", recovery, "--epoch", "0.5",
                    *(["--replay"] if clock == "replay" else []))
    for kill_after in (8_000, 20_000):
        run = Watched(*[a for a in args if a != "--quiet"])
        run.wait_for(lambda r=run, k=kill_after: r.events() >= k)
        run.proc.send_signal(signal.SIGKILL)
        assert run.finish() == -signal.SIGKILL
        assert run.events() < n  # killed mid-stream
    final = cli(*args)
    assert final.returncode == 0, final.stderr
    fast = "WHERE path IN ('fast', 'fallback')"
    assert query_scalar(dsn, f"SELECT uniqExact(decision_id) FROM decisions {fast}") == str(n)
    assert query_scalar(dsn, f"SELECT count() FROM decisions FINAL {fast}") == str(n)
    assert int(query_scalar(dsn, "SELECT count() FROM dead_letters FINAL")) == 0


def test_two_processes_make_exactly_the_decisions_of_one(broker, tmp_path):
    topic = topic_name("cluster")
    produce(broker.bootstrap, topic, 8_000)
    results, runs = {}, {}
    for processes in (1, 2):
        dsn = f"chdb://{tmp_path}/p{processes}"
        result = cli(*run_args(broker.bootstrap, topic, dsn, "--processes", str(processes)))
        assert result.returncode == 0, result.stderr
        results[processes] = query_scalar(dsn, "SELECT count(), sum(cityHash64(decision_id)) "
                                               "FROM decisions FINAL "
                                               "WHERE path IN ('fast', 'fallback')")
        # the run is recorded with the whole cluster's counts, as one process's is
        runs[processes] = query_scalar(dsn, "SELECT events, decisions, dead_letters FROM runs")
    assert results[1] == results[2]
    assert results[1].startswith("8000,")
    for processes in (1, 2):  # slow-path decisions follow the wall clock: they vary
        events, decisions, dead_letters = map(int, runs[processes].split(","))
        assert (events, dead_letters) == (8_000, 0) and decisions >= 8_000


def test_frozen_broker_shows_within_5s_and_the_run_completes_exactly_once(tmp_path):
    own = start_broker()  # frozen below, so not the shared one
    try:
        topic, n = topic_name("freeze"), 60_000
        produce(own.bootstrap, topic, n)
        dsn = f"chdb://{tmp_path}/store"
        run = Watched(*[a for a in run_args(own.bootstrap, topic, dsn, "--batch", "500")
                        if a != "--quiet"])
        run.wait_for(lambda: run.events() > 0)
        own.freeze()
        frozen_at = time.monotonic()
        time.sleep(15)
        own.thaw()
        assert run.finish() == 0, "\n".join(line for _, line in run.lines[-20:])
        shown = [t for t, line in run.lines if "KAFKA UNREACHABLE" in line]
        assert shown and shown[0] - frozen_at <= 5.0
        fast = "FROM decisions FINAL WHERE path IN ('fast', 'fallback')"
        assert int(query_scalar(dsn, f"SELECT count() {fast}")) == n
        assert int(query_scalar(dsn, f"SELECT uniqExact(decision_id) {fast}")) == n
        alarms = query_scalar(dsn, "SELECT groupUniqArray(signal) FROM drift_events "
                                   "WHERE detector = 'kafka'")
        assert "kafka_unreachable" in alarms and "kafka_recovered" in alarms
    finally:
        own.stop()


def test_events_limit_stops_a_kafka_run_after_n_events(broker, tmp_path):
    topic = topic_name("limit")
    produce(broker.bootstrap, topic, 3_000)
    dsn = f"chdb://{tmp_path}/store"
    result = cli("run", "--source", "kafka", "--kafka", broker.bootstrap, "--topic", topic,
                 "--store", dsn, "--quiet", "--events", "1000")
    assert result.returncode == 0, result.stderr
    assert query_scalar(dsn, "SELECT count() FROM decisions FINAL "
                             "WHERE path IN ('fast', 'fallback')") == "1000"


def test_a_message_larger_than_a_fetch_is_a_dead_letter_not_a_stall(broker, tmp_path):
    """Fetches are capped at 1 MiB to bound memory; a 3 MB message still arrives."""
    from sinks.kafka import ensure_topic

    topic = topic_name("big")
    ensure_topic({"bootstrap.servers": broker.bootstrap}, topic, 1)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "message.max.bytes": 4_000_000})
    now, big = int(time.time() * 1000), b'{"source_id": "s1", "pad": "' + b"x" * 3_000_000 + b'"}'
    for i in range(100):
        producer.produce(topic, orjson.dumps({"source_id": "s1", "event_time": now, "seq": i,
                                              "values": {"battery": 50.0}}))
        if i == 49:
            producer.produce(topic, big)
    assert producer.flush(10) == 0
    dsn = f"chdb://{tmp_path}/store"
    result = cli(*run_args(broker.bootstrap, topic, dsn))
    assert result.returncode == 0, result.stderr
    assert query_scalar(dsn, "SELECT count() FROM decisions FINAL "
                             "WHERE path IN ('fast', 'fallback')") == "100"
    assert query_scalar(dsn, "SELECT reason FROM dead_letters") == \
        f"oversized: {len(big)} bytes > limit 1048576"


def test_health_reports_a_silent_broker_once_after_two_missed_checks():
    from flows.kafka_health import KafkaHealth

    # nothing listens on this port: every check times out, a real outage
    consumer = Consumer({"bootstrap.servers": f"127.0.0.1:{free_port()}",
                         "group.id": "health-test"})
    health = KafkaHealth(every_s=0.2, timeout_s=0.2)
    health.watch("t/0", consumer, "t", 0)
    try:
        started, alarms = time.monotonic(), []
        while not alarms and time.monotonic() - started < 5:
            time.sleep(0.05)
            alarms = health.drain("t/0")
        assert [a.signal for a in alarms] == ["kafka_unreachable"]
        # two checks that each waited out their 0.2 s timeout: one miss is not an outage
        assert time.monotonic() - started >= 0.35
        time.sleep(1.0)
        assert health.drain("t/0") == []           # once per outage
    finally:
        health.unwatch("t/0")
        consumer.close()


def test_a_topic_replays_to_the_decisions_of_the_same_records_from_a_file(broker, tmp_path):
    """A topic produced at a steady rate (record timestamps are the arrival times; the
    messages do not carry them) replayed on the pipeline clock gives the decisions of
    its records read from a file in arrival order: the same IDs, actions, paths, fresh
    flags and modes, and the same alarms, with one process or two. The file breaks ties
    of arrival time as the replay does (partition, then offset), so both see one order.
    Read partition by partition on the replay clock instead (the plain Kafka source),
    the same records gave 10,378 stale decisions instead of 502."""
    import zlib

    from sinks.kafka import ensure_topic
    from tests.conftest import with_outage
    from tests.test_semantic_e2e import write

    raw = tmp_path / "raw.jsonl"
    assert cli("simulate", "--out", str(raw), "--events", "24000", "--sources", "40",
               "--rate", "2000").returncode == 0
    events = [orjson.loads(line) for line in raw.read_bytes().splitlines()]
    events = with_outage(events, lambda s: int(s[-3:]) % 4 == 0, 4_000, 7_000)  # stale
    partition = {e["source_id"]: zlib.crc32(e["source_id"].encode()) % 4 for e in events}
    order = sorted(range(len(events)), key=lambda i: (
        events[i]["arrival_time"], partition[events[i]["source_id"]], i))
    events = [events[i] for i in order]
    path = write(tmp_path / "fleet.jsonl", events)

    topic = topic_name("replay")
    ensure_topic({"bootstrap.servers": broker.bootstrap}, topic, 4)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 20})
    for i, event in enumerate(events):
        arrival = event.pop("arrival_time")
        producer.produce(topic, orjson.dumps(event), key=event["source_id"].encode(),
                         partition=partition[event["source_id"]], timestamp=arrival)
        if i % 5_000 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0

    runs = {"file": lambda dsn: ("replay", str(path), "--store", dsn),
            "kafka": lambda dsn: run_args(broker.bootstrap, topic, dsn, "--replay"),
            "kafka2": lambda dsn: run_args(broker.bootstrap, topic, dsn, "--replay", "-p", "2")}
    digests = []
    for name, args in runs.items():
        dsn = f"chdb://{tmp_path}/{name}"
        result = cli(*args(dsn), "--batch", "1000", "-q")
        assert result.returncode == 0, result.stderr
        digests.append((
            query_scalar(dsn, "SELECT count(), sum(cityHash64(decision_id, action, path, "
                              "fresh, mode)), countIf(NOT fresh) FROM decisions FINAL"),
            query_scalar(dsn, "SELECT count(), sum(cityHash64(source_id, signal, "
                              "detected_at)) FROM drift_events FINAL")))
    assert digests[0] == digests[1] == digests[2]  # a file, one process, two processes
    decisions, _, stale = digests[0][0].split(",")
    assert int(decisions) > 24_000 and int(stale) > 0  # slow and canary rows; some stale


def test_a_store_outage_stops_reading_the_topic_and_resumes_where_it_stopped(broker,
                                                                              tmp_path):
    """The store fails for 4 s (injected, see tests/test_store_outage.py): the consumer
    is not polled meanwhile, and afterwards every record is decided once."""
    topic, n = topic_name("outage"), 40_000
    produce(broker.bootstrap, topic, n)
    dsn = f"chdb://{tmp_path}/store"
    run = Watched(*[a for a in run_args(broker.bootstrap, topic, dsn, "--batch", "1000")
                    if a != "--quiet"], env={"LUCIDSTREAM_STORE_FAULT": "errors:4@decisions=5000"})
    assert run.finish() == 0, "\n".join(line for _, line in run.lines[-20:])
    held = [int(m.group(1).replace(",", "")) for _, line in run.lines
            if "STORE DOWN" in line and (m := re.match(r"events ([\d,]+)", line))]
    # what was in flight when the store failed is decided (the writer's buffer), then
    # no more is read: the last readings of the outage agree
    assert len(held) >= 10 and len(set(held[-8:])) == 1 and held[-1] < n, held
    assert held[-1] - held[0] <= 10_000, f"more read than the buffers hold: {held}"
    assert int(query_scalar(dsn, "SELECT count() FROM decisions FINAL "
                                 "WHERE path IN ('fast', 'fallback')")) == n
    assert int(query_scalar(dsn, "SELECT uniqExact(decision_id) FROM decisions "
                                 "WHERE path IN ('fast', 'fallback')")) == n


def test_a_broker_restarted_without_its_data_is_an_alarm_and_nothing_is_skipped(tmp_path):
    """tansu keeps topics in memory: after a restart the topic is recreated empty and
    its offsets start again at 0, below the flow's positions. The flow reconnects,
    raises kafka_offset_reset per partition, and decides every new record. Fails
    without KafkaHealth.past_end: the flow sat at its old offsets, reporting no lag."""
    port = free_port()
    own = start_broker(port=port)
    try:
        topic = topic_name("restart")
        produce(own.bootstrap, topic, 4_000)
        dsn = f"chdb://{tmp_path}/store"
        run = Watched("run", "--source", "kafka", "--kafka", own.bootstrap, "--topic", topic,
                      "--store", dsn)
        run.wait_for(lambda: run.events() >= 4_000)
        own.stop()
        own = start_broker(port=port)
        # new sources (a restarted producer numbering from 0 again would repeat IDs)
        ensure_topic({"bootstrap.servers": own.bootstrap}, topic, 4)
        producer = Producer({"bootstrap.servers": own.bootstrap})
        now = int(time.time() * 1000)
        for i in range(2_000):
            producer.produce(topic, orjson.dumps({
                "source_id": f"after-{i % 20}", "event_time": now + i, "seq": i // 20,
                "values": {"speed": 1.0, "battery": 80.0}}), partition=i % 4)
        producer.flush(10)
        run.wait_for(lambda: run.events() >= 6_000, timeout=120)
        run.proc.send_signal(signal.SIGINT)
        assert run.finish() == 0, "\n".join(line for _, line in run.lines[-20:])
        assert int(query_scalar(dsn, "SELECT count() FROM decisions FINAL "
                                     "WHERE path IN ('fast', 'fallback')")) == 6_000
        resets = query_scalar(dsn, "SELECT count(), min(value) FROM drift_events FINAL "
                                   "WHERE signal = 'kafka_offset_reset'").split(",")
        assert int(resets[0]) >= 1 and float(resets[1]) > 0
    finally:
        own.stop()
