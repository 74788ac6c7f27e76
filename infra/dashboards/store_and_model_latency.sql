-- title: Store insert and model inference latency
-- chart: line
-- unit: ms
-- Per 10 s of wall time: one table's insert into the state store (mean and longest)
-- beside the model path's scoring of one batch (mean).
SELECT
    toStartOfInterval(at, INTERVAL 10 SECOND) AS time,
    round(sum(insert_ms_mean * inserts) / greatest(sum(inserts), 1), 2) AS insert_ms,
    round(max(insert_ms_max), 2) AS insert_max_ms,
    round(sum(inference_ms_mean * inference_batches) / greatest(sum(inference_batches), 1), 2)
        AS inference_ms
FROM pipeline_metrics FINAL
GROUP BY time
ORDER BY time
