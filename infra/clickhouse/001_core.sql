-- lucidstream core schema. Applied at every start; every statement is idempotent.
-- Times are DateTime64(3, 'UTC'): epoch milliseconds. Tables whose rows count
-- (decisions, dead letters, alarms, mode changes, outcomes) are ReplacingMergeTree
-- keyed by a deterministic ID, so a replay or a crash-restart never doubles a
-- row; query them with FINAL (or uniqExact of the ID) for exact counts. The
-- deduplication window also drops a re-inserted identical block at once.

CREATE TABLE IF NOT EXISTS decisions
(
    decision_id    String,
    trace_id       String,
    source_id      String,
    decision_type  LowCardinality(String),
    path           LowCardinality(String),   -- fast | slow | fallback | canary
    action         LowCardinality(String),
    score          Nullable(Float64),        -- NULL when the model did not run (rules only)
    confidence     Nullable(Float64),
    model_version  LowCardinality(String),
    variant        LowCardinality(String),
    mode           LowCardinality(String),   -- NORMAL | REACTIVE_ONLY | CONSERVATIVE
    event_time     DateTime64(3, 'UTC'),
    decided_at     DateTime64(3, 'UTC'),     -- pipeline clock (replay clock in replays)
    age_ms         Int64,                    -- decided_at - event_time
    fresh          Bool,                     -- false when age broke the SLA or the clock is skewed
    latency_ms     Float64,                  -- ingest to decision, wall time inside the pipeline
    escalated      Bool,
    reason         String,
    flow           LowCardinality(String),
    origin         String                    -- file:line or topic/partition/offset
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (source_id, decision_id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS outcomes
(
    decision_id  String,
    outcome      LowCardinality(String),
    label        Float64,
    event_time   DateTime64(3, 'UTC'),
    received_at  DateTime64(3, 'UTC'),
    origin       String
)
ENGINE = ReplacingMergeTree
ORDER BY (decision_id, outcome)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS dead_letters
(
    dead_letter_id  String,
    received_at     DateTime64(3, 'UTC'),
    origin          String,
    reason          String,
    raw             String,
    flow            LowCardinality(String)
)
ENGINE = ReplacingMergeTree
ORDER BY dead_letter_id
SETTINGS non_replicated_deduplication_window = 10000;

-- Alarms: freshness anomalies now, drift detectors later, one row per occurrence.
CREATE TABLE IF NOT EXISTS drift_events
(
    alarm_id     String,
    detected_at  DateTime64(3, 'UTC'),        -- pipeline clock
    event_time   DateTime64(3, 'UTC'),
    source_id    String,                      -- empty for fleet-wide signals
    signal       LowCardinality(String),      -- seq_gap, clock_skew, silence, ...
    detector     LowCardinality(String),
    value        Float64,
    threshold    Float64,
    details      String,                      -- JSON
    flow         LowCardinality(String)
)
ENGINE = ReplacingMergeTree
ORDER BY (signal, source_id, alarm_id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS mode_changes
(
    change_id  String,
    at         DateTime64(3, 'UTC'),
    from_mode  LowCardinality(String),
    to_mode    LowCardinality(String),
    reason     String,
    trigger    LowCardinality(String),         -- auto | override
    values     String,                         -- JSON of the values that triggered it
    scope      String,                         -- which shard or worker decided it
    flow       LowCardinality(String)
)
ENGINE = ReplacingMergeTree
ORDER BY (at, change_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- One row per run of a flow: what it read and what it produced.
CREATE TABLE IF NOT EXISTS runs
(
    run_id        String,
    flow          LowCardinality(String),
    started_at    DateTime64(3, 'UTC'),
    finished_at   DateTime64(3, 'UTC'),
    source        String,
    events        UInt64,
    decisions     UInt64,
    stale         UInt64,
    dead_letters  UInt64,
    alarms        UInt64,
    final_mode    LowCardinality(String),
    max_lag_ms    Int64,
    wall_seconds  Float64
)
ENGINE = ReplacingMergeTree
ORDER BY run_id;
