-- title: Recent alarms: what changed, since when
-- chart: table
-- The latest 50 alarms. A change of level or spread (value, peer, fleet, variance) also
-- says since when it began (onset, event time), by how much (in the baseline's standard
-- deviations), which way, and the baseline it was judged against.
SELECT
    detected_at,
    signal,
    source_id,
    if(magnitude = 0, NULL, onset_time) AS onset,
    round(magnitude, 2) AS magnitude,
    direction,
    round(baseline, 4) AS baseline,
    round(baseline_sd, 4) AS baseline_sd
FROM drift_events FINAL
ORDER BY detected_at DESC, signal, source_id
LIMIT 50
