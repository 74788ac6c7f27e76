-- title: Drift and freshness alarms
-- chart: bar
-- unit: alarms
-- Alarms per minute of pipeline clock, by signal family (value drift, model, freshness).
SELECT
    toStartOfMinute(detected_at) AS time,
    countIf(signal LIKE 'value:%' OR signal LIKE 'peer:%' OR signal LIKE 'variance:%'
            OR signal LIKE 'frozen:%') AS value_drift,
    countIf(signal LIKE 'fleet:%') AS fleet_drift,
    countIf(signal IN ('score', 'confidence', 'error')) AS model_drift,
    countIf(signal IN ('silence', 'silence_end', 'seq_gap', 'seq_reset', 'clock_skew',
                       'retired')) AS freshness,
    countIf(detector = 'canary' OR signal LIKE 'kafka%') AS other
FROM drift_events FINAL
GROUP BY time
ORDER BY time
