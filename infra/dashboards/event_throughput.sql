-- title: Event throughput
-- chart: line
-- unit: per second
-- Input events and decisions per second of pipeline clock, from the 10 s quality windows.
SELECT
    window_start AS time,
    round(sum(events) / (dateDiff('millisecond', min(window_start), max(window_end)) / 1000), 1)
        AS events_per_s,
    round(sum(decisions) / (dateDiff('millisecond', min(window_start), max(window_end)) / 1000), 1)
        AS decisions_per_s
FROM quality_metrics FINAL
GROUP BY time
ORDER BY time
