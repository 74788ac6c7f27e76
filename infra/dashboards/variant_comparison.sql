-- title: Variant comparison
-- chart: table
-- Each model variant side by side: volume, confidence, accuracy on outcomes, agreement
-- with the slow path, and how often late data would have changed its decisions.
SELECT
    variant,
    model_version,
    sum(decisions) AS decided,
    round(sumIf(confidence_mean * decisions, confidence_mean IS NOT NULL)
          / greatest(sumIf(decisions, confidence_mean IS NOT NULL), 1), 4) AS confidence,
    sum(labelled) AS graded,
    if(sum(labelled) > 0, round(sum(correct) / sum(labelled), 4), NULL) AS accuracy,
    if(sum(slow_compared) > 0, round(sum(slow_agreed) / sum(slow_compared), 4), NULL)
        AS slow_agreement,
    round(sum(regrets_changed) / greatest(sum(decisions), 1), 4) AS regret_rate
FROM quality_metrics FINAL
GROUP BY variant, model_version
ORDER BY decided DESC
