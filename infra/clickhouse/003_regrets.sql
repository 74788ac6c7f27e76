-- Late-data regret: a decision re-scored once with an event that existed when it
-- was made but arrived after. changed = the action would have been different.
CREATE TABLE IF NOT EXISTS regrets
(
    regret_id        String,
    decision_id      String,
    source_id        String,
    decided_at       DateTime64(3, 'UTC'),
    original_action  LowCardinality(String),
    revised_action   LowCardinality(String),
    changed          Bool,
    late_event_time  DateTime64(3, 'UTC'),
    late_arrived_at  DateTime64(3, 'UTC'),
    informed_by      String,                -- origin of the late event
    model_version    LowCardinality(String),
    variant          LowCardinality(String),
    flow             LowCardinality(String)
)
ENGINE = ReplacingMergeTree
ORDER BY (source_id, regret_id)
SETTINGS non_replicated_deduplication_window = 10000;
