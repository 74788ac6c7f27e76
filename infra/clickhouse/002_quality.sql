-- Decision-quality metrics: one row per window of pipeline clock, shard, model
-- version and variant. Sum counts across shards; latency percentiles are per
-- shard (take the max across shards for a conservative fleet figure).
CREATE TABLE IF NOT EXISTS quality_metrics
(
    metric_id        String,
    window_start     DateTime64(3, 'UTC'),
    window_end       DateTime64(3, 'UTC'),
    flow             LowCardinality(String),
    shard            LowCardinality(String),
    model_version    LowCardinality(String),
    variant          LowCardinality(String),
    events           UInt64,
    decisions        UInt64,
    fast             UInt64,
    slow             UInt64,
    fallback         UInt64,
    stale            UInt64,
    escalated        UInt64,
    latency_p50_ms   Float64,           -- wall clock inside the pipeline: differs per run
    latency_p95_ms   Float64,
    latency_p99_ms   Float64,
    confidence_hist  Array(UInt64),     -- 10 bins over [0.5, 1.0]
    confidence_mean  Nullable(Float64),
    stale_rate       Float64,
    fallback_rate    Float64,
    escalation_rate  Float64,
    slow_compared    UInt64,            -- fast decisions a slow window confirmed or revised
    slow_agreed      UInt64,
    agreement        Nullable(Float64),
    labelled         UInt64,            -- decisions whose outcome arrived in this window
    correct          UInt64,
    accuracy         Nullable(Float64),
    brier            Nullable(Float64), -- mean squared error of the score against the label
    outcomes_late    UInt64,            -- outcomes whose decision had left the TTL
    drift_alarms     UInt64,
    regrets          UInt64,            -- decisions re-scored after late data
    regrets_changed  UInt64,            -- ... whose action would have changed
    regret_rate      Float64            -- regrets_changed / decisions
)
ENGINE = ReplacingMergeTree
ORDER BY (flow, window_start, shard, model_version, variant, metric_id)
SETTINGS non_replicated_deduplication_window = 10000;
