-- title: Rows inserted per second
-- chart: line
-- Rows written to the store per second of wall time, every table, all processes.
SELECT
    toStartOfInterval(at, INTERVAL 10 SECOND) AS time,
    round(sum(rows_inserted) / greatest(sum(interval_s) / uniqExact(process), 0.001))
        AS rows_per_s
FROM pipeline_metrics FINAL
GROUP BY time
ORDER BY time
