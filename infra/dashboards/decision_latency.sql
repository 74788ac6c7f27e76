-- title: Decision latency percentiles
-- chart: line
-- unit: ms
-- Wall time from reading a batch to deciding it, per 10 s window (worst shard).
SELECT
    window_start AS time,
    round(max(latency_p50_ms), 2) AS p50_ms,
    round(max(latency_p95_ms), 2) AS p95_ms,
    round(max(latency_p99_ms), 2) AS p99_ms
FROM quality_metrics FINAL
WHERE decisions > 0
GROUP BY time
ORDER BY time
