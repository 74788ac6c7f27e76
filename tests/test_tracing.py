"""Decision traces in otel_traces: trees, the producer's context, sampling, budget."""

from __future__ import annotations

import json

from tests.conftest import cli, query_scalar, with_outage
from tests.test_semantic_e2e import write

PRODUCER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PRODUCER_SPAN = "00f067aa0ba902b7"


def _replay(tmp_path, events, ratio="0.05", budget="100000"):
    tmp_path.mkdir(exist_ok=True)
    dsn = f"chdb://{tmp_path}/store"
    result = cli("replay", str(write(tmp_path / "in.jsonl", events)), "--store", dsn, "-q",
                 env={"LUCIDSTREAM_TRACE_RATIO": ratio, "LUCIDSTREAM_TRACE_BUDGET": budget})
    assert result.returncode == 0, result.stderr
    return dsn


def _fleet(tmp_path, events=12_000):
    path = tmp_path / "fleet.jsonl"
    assert cli("simulate", "--out", str(path), "--events", str(events), "--sources", "20",
               "--rate", "400").returncode == 0  # 30 s of simulated time
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_sampled_decision_is_one_tree_and_continues_its_producers_trace(tmp_path):
    events = _fleet(tmp_path)
    for e in events[::100]:  # these arrived with a producer's W3C context
        e["traceparent"] = f"00-{PRODUCER_TRACE}-{PRODUCER_SPAN}-01"
    dsn = _replay(tmp_path, events)

    # per trace and root: exactly one root, every other span's parent inside the trace
    broken = query_scalar(dsn, f"""
        SELECT count() FROM (
            SELECT groupArray(SpanId) AS spans, groupArray(ParentSpanId) AS parents,
                   countIf(ParentSpanId IN ('', '{PRODUCER_SPAN}')) AS roots,
                   uniqExact(SpanName) AS names
            FROM otel_traces GROUP BY TraceId, SpanAttributes['decision_id'])
        WHERE roots != 1 OR names < 6
           OR NOT arrayAll(p -> p IN ('', '{PRODUCER_SPAN}') OR has(spans, p), parents)""")
    assert broken == "0"
    traced = int(query_scalar(dsn, "SELECT uniqExact(SpanAttributes['decision_id']) "
                                   "FROM otel_traces"))
    stored = int(query_scalar(dsn, "SELECT count() FROM decisions FINAL"))
    assert 0.03 * stored < traced < 0.2 * stored

    # the decisions whose input carried a traceparent: the producer's trace, as children
    carried = query_scalar(dsn, f"""
        SELECT count(), countIf(ParentSpanId = '{PRODUCER_SPAN}')
        FROM otel_traces WHERE TraceId = '{PRODUCER_TRACE}' AND SpanName = 'decision motion'""")
    roots, children_of_producer = carried.split(",")
    assert int(roots) > 0 and roots == children_of_producer
    assert query_scalar(dsn, f"SELECT count() FROM decisions FINAL "
                             f"WHERE trace_id = '{PRODUCER_TRACE}'") == "120"
    other = query_scalar(dsn, "SELECT count() FROM otel_traces o JOIN decisions d FINAL "
                              "ON o.SpanAttributes['decision_id'] = d.decision_id "
                              "WHERE o.TraceId != d.trace_id")
    assert other == "0"  # every span sits in its decision's trace
    resource = query_scalar(dsn, "SELECT ServiceName, ResourceAttributes['lucidstream.flow'] "
                                 "FROM otel_traces LIMIT 1")
    assert resource == "lucidstream,fleet"

    one = query_scalar(dsn, f"SELECT SpanAttributes['decision_id'] FROM otel_traces "
                            f"WHERE TraceId = '{PRODUCER_TRACE}' LIMIT 1")
    shown = cli("trace", one, "--store", dsn)
    assert shown.returncode == 0, shown.stderr
    for stage in ("decision motion", "ingest", "validate", "freshness", "decide", "sink",
                  PRODUCER_SPAN):
        assert stage in shown.stdout


def test_every_remarkable_decision_is_kept_and_the_budget_counts_what_it_drops(tmp_path):
    events = _fleet(tmp_path)
    # robots 0-4 are cut off from 10 s to 20 s: stale fallbacks, REACTIVE_ONLY
    lines = with_outage(events, lambda source: source < "robot-005", 10_000, 20_000)
    dsn = _replay(tmp_path, lines, ratio="0")
    remarkable = query_scalar(dsn, "SELECT count() FROM decisions FINAL WHERE mode != 'NORMAL' "
                                   "OR NOT fresh OR path IN ('fallback', 'canary') "
                                   "OR escalated OR reason LIKE '%rejected:%'")
    assert int(remarkable) > 100
    traced = query_scalar(dsn, "SELECT uniqExact(SpanAttributes['decision_id']) "
                               "FROM otel_traces WHERE SpanName = 'decision motion'")
    assert traced == remarkable  # ratio 0: exactly the remarkable ones
    assert query_scalar(dsn, "SELECT traced, traces_dropped FROM runs") == f"{traced},0"

    dsn = _replay(tmp_path / "tight", lines, ratio="0", budget="40")
    kept, dropped = (int(x) for x in query_scalar(
        dsn, "SELECT traced, traces_dropped FROM runs").split(","))
    assert dropped > 0 and kept + dropped == int(remarkable)
    assert query_scalar(dsn, "SELECT uniqExact(SpanAttributes['decision_id']) FROM "
                             "otel_traces WHERE SpanName = 'decision motion'") == str(kept)


def test_spans_also_reach_an_otlp_collector_when_the_endpoint_is_set(tmp_path):
    """A minimal OTLP/HTTP receiver on loopback stands in for a collector (the exporter,
    its protobuf encoding and the HTTP exchange are the real ones)."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    received: list[ExportTraceServiceRequest] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path == "/v1/traces":
                received.append(ExportTraceServiceRequest.FromString(body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        events = _fleet(tmp_path, events=3_000)
        dsn = f"chdb://{tmp_path}/store"
        result = cli("replay", str(write(tmp_path / "in.jsonl", events)), "--store", dsn,
                     "-q", env={"OTEL_EXPORTER_OTLP_ENDPOINT":
                                f"http://127.0.0.1:{server.server_address[1]}",
                                "LUCIDSTREAM_TRACE_RATIO": "0.05"})
        assert result.returncode == 0, result.stderr
    finally:
        server.shutdown()
    spans = [span for request in received for resource in request.resource_spans
             for scope in resource.scope_spans for span in scope.spans]
    stored = int(query_scalar(dsn, "SELECT count() FROM otel_traces"))
    assert stored > 0 and len(spans) == stored  # the same spans, both ways
    names = {kv.key: kv.value.string_value
             for kv in received[0].resource_spans[0].resource.attributes}
    assert names["service.name"] == "lucidstream" and names["lucidstream.flow"] == "fleet"
