-- title: Fallback rate
-- chart: line
-- unit: share
-- Share of decisions that took the fallback (stale input) and that were escalated.
SELECT
    window_start AS time,
    round(sum(fallback) / greatest(sum(decisions), 1), 4) AS fallback_rate,
    round(sum(escalated) / greatest(sum(decisions), 1), 4) AS escalation_rate
FROM quality_metrics FINAL
GROUP BY time
ORDER BY time
