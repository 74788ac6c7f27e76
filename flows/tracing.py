"""Decision traces: one OpenTelemetry span tree per sampled decision.

The tracer provider carries the resource (``service.name``, the flow, the
process and worker that write the store). Spans are made where the decision
has finished its journey, in the store sink right after its row is written, so
the tree holds every stage with real times::

    decision motion              ingest start .. sink end
    ├── ingest                   read from the source .. decode starts
    ├── validate                 decode (the contract check) of its batch
    ├── freshness                clock, freshness and mode checks of its shard batch
    ├── fast_score               the model scoring its shard batch
    ├── slow_score               (slow decisions) the decide step in which its window closed
    ├── decide                   rules, SLA, mode gate, invariants
    └── sink                     the insert that stored it

Stage times are those of the batch the decision travelled in (work is done in
batches). Every span carries ``decision_id``. A decision whose input had a W3C
``traceparent`` continues the producer's trace (its root's parent is the
producer's span); others get the decision row's ``trace_id``. Spans go through
the SDK's ``BatchSpanProcessor`` to ``otel_traces`` in the store and, when
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, to an OTLP collector as well.
"""

from __future__ import annotations

import atexit
import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator

from operators.decision import Decision
from operators.errors import ConfigError
from operators.sampling import SpanBudget
from sinks.tracing import ClickHouseSpanExporter

__all__ = ["STAGES", "DecisionTracer", "Traced", "tracer_for"]

STAGES = ("ingest", "validate", "freshness", "fast_score", "slow_score", "decide")
_ATTRIBUTES = ("decision_id", "source_id", "decision_type", "path", "action", "score",
               "confidence", "model_version", "variant", "mode", "age_ms", "fresh",
               "escalated", "reason", "flow", "origin")


@dataclass(frozen=True, slots=True)
class Traced:
    """A decision row to trace, its batch's stage times (monotonic ns) and the
    producer's span ID when its input carried a ``traceparent``."""

    row: Decision
    stages: dict[str, tuple[int, int]]
    parent_span: str | None = None


class _PresetTraceIds(IdGenerator):
    """Random IDs, except the trace ID the tracer asks for next (the decision's)."""

    def __init__(self) -> None:
        self._random = RandomIdGenerator()
        self._local = threading.local()

    def preset(self, trace_id: int) -> None:
        self._local.trace_id = trace_id

    def generate_span_id(self) -> int:
        return self._random.generate_span_id()

    def generate_trace_id(self) -> int:
        preset = getattr(self._local, "trace_id", None)
        if preset:
            self._local.trace_id = None
            return int(preset)
        return self._random.generate_trace_id()


class DecisionTracer:
    """Turns traced decisions into span trees, within a span budget per second.

    A tree costs :attr:`SPANS_PER_TREE` spans, so a budget of 100 spans a second pays
    for 12 trees now and none until it refills:

    >>> tracer = DecisionTracer("chdb:///tmp/lucidstream-doc-tracer", flow="demo",
    ...                         budget_per_s=100)
    >>> tracer.reserve(50), tracer.reserve(50)
    (12, 0)
    >>> tracer.provider.shutdown()
    """

    def __init__(self, dsn: str, flow: str, budget_per_s: int = 500,
                 worker: str = "") -> None:
        self.ids = _PresetTraceIds()
        resource = Resource.create({
            "service.name": "lucidstream", "service.instance.id":
                f"{socket.gethostname()}-{os.getpid()}",
            "lucidstream.flow": flow, "lucidstream.worker": worker or f"pid-{os.getpid()}"})
        self.provider = TracerProvider(resource=resource, id_generator=self.ids)
        self.exporter = ClickHouseSpanExporter(dsn)
        self.provider.add_span_processor(BatchSpanProcessor(
            self.exporter, max_queue_size=65_536, max_export_batch_size=4_096,
            schedule_delay_millis=1_000))
        if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )
            except ImportError:
                raise ConfigError("OTEL_EXPORTER_OTLP_ENDPOINT is set but the OTLP exporter "
                                  "is missing: pip install "
                                  "opentelemetry-exporter-otlp-proto-http") from None
            self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self.tracer = self.provider.get_tracer("lucidstream.decisions", "1")
        self.budget = SpanBudget(budget_per_s)
        # monotonic ns -> epoch ns, measured once
        self._offset = time.time_ns() - time.monotonic_ns()

    SPANS_PER_TREE = 8

    def reserve(self, count: int) -> int:
        """How many of ``count`` picked decisions the span budget pays for now (the
        first ones); the others are dropped and counted before any work is done."""
        return self.budget.afford(count, self.SPANS_PER_TREE)

    def record(self, traced: Sequence[Traced], sink_start_ns: int, sink_end_ns: int) -> int:
        """Span trees for ``traced`` decisions (already paid for by :meth:`reserve`)
        whose rows were stored between the two monotonic times; returns how many."""
        for item in traced:
            stages = [s for s in STAGES if s in item.stages]
            if item.row.path == "slow" and "decide" in item.stages:
                stages = [s for s in stages if s != "fast_score"] + ["slow_score"]
            self._tree(item, stages, sink_start_ns, sink_end_ns)  # IDs preset per thread
        return len(traced)

    def _tree(self, item: Traced, stages: list[str], sink_start: int, sink_end: int) -> None:
        row, offset = item.row, self._offset
        did = row.decision_id
        fields = row._asdict()
        attributes = {name: fields[name] for name in _ATTRIBUTES if fields[name] is not None}
        trace_id = int(row.trace_id, 16)
        context = None
        if item.parent_span:
            parent = trace.SpanContext(trace_id, int(item.parent_span, 16), is_remote=True,
                                       trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))
            context = trace.set_span_in_context(trace.NonRecordingSpan(parent))
        else:
            self.ids.preset(trace_id)
        times = dict(item.stages)
        if "slow_score" in stages:
            times["slow_score"] = times["decide"]
        begin = min(times[s][0] for s in stages) if stages else sink_start
        root = self.tracer.start_span(f"decision {row.decision_type}", context=context,
                                      attributes=attributes, start_time=begin + offset)
        inner = trace.set_span_in_context(root)
        for stage in stages:
            start, end = times[stage]
            span = self.tracer.start_span(stage, context=inner, start_time=start + offset,
                                          attributes={"decision_id": did})
            span.end(end_time=max(end, start) + offset)
        sink = self.tracer.start_span("sink", context=inner, start_time=sink_start + offset,
                                      attributes={"decision_id": did, "table": "decisions"})
        sink.end(end_time=sink_end + offset)
        root.end(end_time=sink_end + offset)

    def shutdown(self) -> None:
        """Export what is queued, then stop (call before the store closes)."""
        self.provider.shutdown()


_tracers: dict[str, DecisionTracer] = {}
_tracers_lock = threading.Lock()


def tracer_for(dsn: str, flow: str, budget_per_s: int, worker: str = "") -> DecisionTracer:
    """The process's tracer for ``dsn`` (one provider per process and store)."""
    with _tracers_lock:
        tracer = _tracers.get(dsn)
        if tracer is None:
            if not _tracers:
                atexit.register(shutdown_all)  # runs before the store's own atexit close
            tracer = _tracers[dsn] = DecisionTracer(dsn, flow, budget_per_s, worker)
        return tracer


def shutdown_all() -> None:
    """Flush every tracer of this process (before the store closes)."""
    with _tracers_lock:
        tracers = list(_tracers.values())
        _tracers.clear()
    for tracer in tracers:
        tracer.shutdown()
