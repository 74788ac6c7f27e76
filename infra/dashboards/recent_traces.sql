-- title: Recent decision traces
-- chart: table
-- The latest traced decisions: open one with lucidstream trace DECISION_ID (or in
-- Grafana's trace view by its TraceId).
SELECT
    Timestamp AS time,
    SpanAttributes['decision_id'] AS decision_id,
    TraceId AS trace_id,
    SpanAttributes['path'] AS path,
    SpanAttributes['mode'] AS mode,
    SpanAttributes['action'] AS action,
    round(Duration / 1e6, 2) AS ms
FROM otel_traces
WHERE ParentSpanId = '' OR SpanName LIKE 'decision %'
ORDER BY Timestamp DESC
LIMIT 50
