-- What the pipeline itself costs, every 10 s of wall time per process (and at its
-- end): the state store's insert latency beside the model's inference latency, rows
-- inserted, CPU and memory. Written by the running flow; read by the cost panels.
CREATE TABLE IF NOT EXISTS pipeline_metrics
(
    metric_id              String,
    at                     DateTime64(3, 'UTC'),     -- wall clock
    flow                   LowCardinality(String),
    process                String,                   -- host:pid
    interval_s             Float64,
    events                 UInt64,
    decisions              UInt64,
    rows_inserted          UInt64,
    inserts                UInt64,
    insert_ms_mean         Float64,                  -- one table's insert, to the store
    insert_ms_max          Float64,
    inference_batches      UInt64,                   -- model path calls (one per batch)
    inference_ms_mean      Float64,                  -- scoring one batch, every variant
    inference_us_per_event Float64,
    cpu_seconds            Float64,                  -- this process, in the interval
    rss_mb                 Float64,
    stored_at              DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree
ORDER BY (flow, at, metric_id);
