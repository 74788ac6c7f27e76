-- Autonomy controls: canary checks, rejected decisions (invariants), and the log of
-- runtime controls (feature flags and rollout steps). Idempotent like the rest.

-- One row per canary check: a synthetic input with a known right decision.
CREATE TABLE IF NOT EXISTS canary_results
(
    canary_id        String,
    at               DateTime64(3, 'UTC'),     -- pipeline clock
    canary           LowCardinality(String),
    checks           LowCardinality(String),   -- rules | model
    slot             Int64,                    -- schedule slot: clock // every_ms
    variant          LowCardinality(String),
    model_version    LowCardinality(String),
    expected_action  LowCardinality(String),
    actual_action    LowCardinality(String),
    status           LowCardinality(String),   -- pass | fail | warmup | unseen
    score            Nullable(Float64),
    mode             LowCardinality(String),
    decision_id      String,
    age_ms           Int64,
    reason           String,
    flow             LowCardinality(String)
)
ENGINE = ReplacingMergeTree
ORDER BY (canary, slot, canary_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- A decision rejected because it was made against a state that has since changed.
CREATE TABLE IF NOT EXISTS invariant_violations
(
    violation_id         String,
    at                   DateTime64(3, 'UTC'),
    source_id            String,
    decision_id          String,
    decision_type        LowCardinality(String),
    path                 LowCardinality(String),
    based_on_version     UInt64,
    current_version      UInt64,
    attempted_action     LowCardinality(String),
    current_action       LowCardinality(String),
    current_decision_id  String,
    resolution           String,
    flow                 LowCardinality(String)
)
ENGINE = ReplacingMergeTree
ORDER BY (source_id, violation_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- Runtime controls: feature flag changes (wall clock) and rollout steps (pipeline clock).
CREATE TABLE IF NOT EXISTS control_log
(
    entry_id  String,
    at        DateTime64(3, 'UTC'),
    kind      LowCardinality(String),   -- flags | rollout
    name      String,                   -- capability, or the rollout's candidate
    state     String,                   -- on | off | reset, or "rolling 0.5" ...
    who       String,
    reason    String,
    details   String,                   -- JSON
    scope     String,
    flow      LowCardinality(String)
)
ENGINE = ReplacingMergeTree
ORDER BY (at, entry_id)
SETTINGS non_replicated_deduplication_window = 10000;
