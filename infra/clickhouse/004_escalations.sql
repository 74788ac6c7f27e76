-- The human escalation queue: one row per state of an escalated decision; the
-- highest version wins (0 pending, 1 breached: no answer by due_at, 2 answered).
CREATE TABLE IF NOT EXISTS escalations
(
    escalation_id  String,
    decision_id    String,
    source_id      String,
    decision_type  LowCardinality(String),
    action         LowCardinality(String),   -- what would be executed once approved
    reason         String,
    mode           LowCardinality(String),
    created_at     DateTime64(3, 'UTC'),     -- pipeline clock
    due_at         DateTime64(3, 'UTC'),     -- created_at + the type's response SLA
    status         LowCardinality(String),   -- pending | breached | unwatched | approved | rejected
    responder      String,
    responded_at   Nullable(DateTime64(3, 'UTC')),
    version        UInt8,
    flow           LowCardinality(String)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (escalation_id)
SETTINGS non_replicated_deduplication_window = 10000;
