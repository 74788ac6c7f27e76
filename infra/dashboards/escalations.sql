-- title: Escalations and SLA breaches
-- chart: bar
-- unit: escalations
-- Escalations opened per minute of pipeline clock, by their latest state.
SELECT
    toStartOfMinute(created_at) AS time,
    countIf(status = 'pending') AS pending,
    countIf(status = 'breached') AS breached,
    countIf(status = 'unwatched') AS unwatched,
    countIf(status = 'approved') AS approved,
    countIf(status = 'rejected') AS rejected
FROM escalations FINAL
GROUP BY time
ORDER BY time
