-- title: Canary pass rate
-- chart: line
-- unit: share
-- Share of canary checks passing per schedule slot (warm-up checks excluded).
SELECT
    min(at) AS time,
    round(countIf(status = 'pass') / greatest(countIf(status IN ('pass', 'fail')), 1), 3)
        AS pass_rate,
    countIf(status = 'fail') AS failing_checks
FROM canary_results FINAL
GROUP BY slot
ORDER BY time
