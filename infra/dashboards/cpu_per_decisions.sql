-- title: CPU seconds per 1,000 decisions
-- chart: bar
-- unit: s
-- Per run: the CPU seconds its process used (start-up included) for each 1,000
-- input events decided or dead-lettered.
SELECT
    started_at AS time,
    round(1000 * cpu_seconds / greatest(events + dead_letters, 1), 4) AS cpu_s_per_1000
FROM runs FINAL
WHERE cpu_seconds > 0
ORDER BY time
