-- title: Storage growth per day
-- chart: bar
-- unit: MB
-- Megabytes on disk added per day: the rows each table stored that day (stored_at)
-- times its bytes per row now.
WITH per_row AS (
    SELECT table, sum(bytes_on_disk) / greatest(sum(rows), 1) AS bytes
    FROM system.parts WHERE active AND database = currentDatabase() GROUP BY table)
SELECT
    day AS time,
    round(sumIf(n * bytes, t = 'decisions') / 1e6, 3) AS decisions_mb,
    round(sumIf(n * bytes, t = 'otel_traces') / 1e6, 3) AS traces_mb,
    round(sumIf(n * bytes, t NOT IN ('decisions', 'otel_traces')) / 1e6, 3) AS other_mb
FROM (
    SELECT 'decisions' AS t, toStartOfDay(stored_at) AS day, count() AS n
    FROM decisions GROUP BY day
    UNION ALL SELECT 'otel_traces', toStartOfDay(stored_at), count() FROM otel_traces GROUP BY 2
    UNION ALL SELECT 'drift_events', toStartOfDay(stored_at), count() FROM drift_events GROUP BY 2
    UNION ALL SELECT 'quality_metrics', toStartOfDay(stored_at), count() FROM quality_metrics
              GROUP BY 2
    UNION ALL SELECT 'escalations', toStartOfDay(stored_at), count() FROM escalations GROUP BY 2
) AS stored
INNER JOIN per_row ON per_row.table = stored.t
GROUP BY time
ORDER BY time
