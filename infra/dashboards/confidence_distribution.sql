-- title: Confidence distribution
-- chart: bar
-- unit: decisions
-- How sure the model was, in ten bins over [0.5, 1.0], over everything stored.
SELECT
    concat(toString(0.5 + 0.05 * (bin - 1)), '-', toString(0.5 + 0.05 * bin)) AS confidence,
    decisions
FROM
(
    SELECT sumForEach(confidence_hist) AS hist
    FROM quality_metrics FINAL
)
ARRAY JOIN hist AS decisions, arrayEnumerate(hist) AS bin
ORDER BY bin
