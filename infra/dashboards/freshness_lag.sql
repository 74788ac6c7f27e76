-- title: Freshness and watermark lag
-- chart: line
-- unit: ms
-- How old the input of each decision was when decided (p50, p99) and the worst of each
-- 10 s: the largest age is the watermark lag the mode machine sees.
SELECT
    toStartOfInterval(decided_at, INTERVAL 10 SECOND) AS time,
    round(quantile(0.5)(age_ms)) AS age_p50_ms,
    round(quantile(0.99)(age_ms)) AS age_p99_ms,
    max(age_ms) AS watermark_lag_ms
FROM decisions FINAL
WHERE path IN ('fast', 'fallback')
GROUP BY time
ORDER BY time
