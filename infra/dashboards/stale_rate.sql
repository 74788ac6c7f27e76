-- title: Stale rate
-- chart: line
-- unit: share
-- Share of decisions made on input older than the SLA (or clock-skewed), per 10 s window.
SELECT
    window_start AS time,
    round(sum(stale) / greatest(sum(decisions), 1), 4) AS stale_rate
FROM quality_metrics FINAL
GROUP BY time
ORDER BY time
