"""An OpenTelemetry span exporter that writes to ClickHouse's ``otel_traces``.

The table has the schema of the OpenTelemetry Collector's ClickHouse exporter
(``infra/clickhouse/006_traces.sql``), so Grafana's ClickHouse data source shows
the traces as it shows a collector's. The exporter runs behind the SDK's
``BatchSpanProcessor``: spans are queued and written in batches from the
processor's own thread, so exporting never blocks the dataflow; a full queue
drops spans (the SDK's choice) rather than waiting.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

from operators.errors import LucidstreamError
from operators.records import Rows
from sinks.store import Store, open_store

__all__ = ["OTEL_TRACE_COLUMNS", "ClickHouseSpanExporter", "span_row"]

log = logging.getLogger("lucidstream.tracing")

OTEL_TRACE_COLUMNS = (
    "Timestamp", "TraceId", "SpanId", "ParentSpanId", "TraceState", "SpanName", "SpanKind",
    "ServiceName", "ResourceAttributes", "ScopeName", "ScopeVersion", "SpanAttributes",
    "Duration", "StatusCode", "StatusMessage", "Events.Timestamp", "Events.Name",
    "Events.Attributes", "Links.TraceId", "Links.SpanId", "Links.TraceState",
    "Links.Attributes",
)
# The collector's spelling of the enums.
_KINDS = {SpanKind.INTERNAL: "Internal", SpanKind.SERVER: "Server", SpanKind.CLIENT: "Client",
          SpanKind.PRODUCER: "Producer", SpanKind.CONSUMER: "Consumer"}
_STATUS = {StatusCode.UNSET: "Unset", StatusCode.OK: "Ok", StatusCode.ERROR: "Error"}


def _attrs(attributes: object) -> dict[str, str]:
    return {str(k): str(v) for k, v in dict(attributes or {}).items()}  # type: ignore[call-overload]


def span_row(span: ReadableSpan) -> tuple:
    """One ``otel_traces`` row for ``span`` (IDs as lowercase hex, times in ns)."""
    ctx = span.context
    assert ctx is not None
    parent = f"{span.parent.span_id:016x}" if span.parent is not None else ""
    start, end = span.start_time or 0, span.end_time or span.start_time or 0
    resource = _attrs(span.resource.attributes)
    scope = span.instrumentation_scope
    events = span.events
    links = span.links
    return (
        start, f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}", parent,
        ctx.trace_state.to_header() if ctx.trace_state else "", span.name,
        _KINDS.get(span.kind, "Internal"), resource.get("service.name", ""), resource,
        scope.name if scope else "", (scope.version or "") if scope else "",
        _attrs(span.attributes), max(end - start, 0), _STATUS.get(span.status.status_code,
                                                                 "Unset"),
        span.status.description or "",
        [e.timestamp for e in events], [e.name for e in events],
        [_attrs(e.attributes) for e in events],
        [f"{link.context.trace_id:032x}" for link in links],
        [f"{link.context.span_id:016x}" for link in links],
        [link.context.trace_state.to_header() if link.context.trace_state else ""
         for link in links],
        [_attrs(link.attributes) for link in links],
    )


class ClickHouseSpanExporter(SpanExporter):
    """Writes finished spans to ``otel_traces`` of the store at ``dsn``.

    The store opens at the first export; a failed export is counted and logged, never
    raised into the tracer. Use it as any OpenTelemetry exporter::

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(
            ClickHouseSpanExporter("chdb:///abs/path")))
    """

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._store: Store | None = None
        self.exported = 0
        self.failed = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            if self._store is None:
                self._store = open_store(self.dsn)
            rows = [span_row(span) for span in spans]
            self._store.insert(Rows("otel_traces", OTEL_TRACE_COLUMNS, rows), dedup=False)
        except LucidstreamError as exc:
            self.failed += len(spans)
            log.warning("step=trace_export spans=%d error=%s", len(spans), exc)
            return SpanExportResult.FAILURE
        self.exported += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True
