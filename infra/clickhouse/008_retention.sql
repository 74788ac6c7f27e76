-- When each row was stored: every table's TTL counts from it (sinks/retention.py sets
-- the TTLs at start), so a replay of old events is kept as long as a live run's rows.
-- Rows stored before this column existed read it as the time of the migration's merge.
ALTER TABLE decisions ADD COLUMN IF NOT EXISTS stored_at DateTime DEFAULT now();
ALTER TABLE outcomes ADD COLUMN IF NOT EXISTS stored_at DateTime DEFAULT now();
ALTER TABLE regrets ADD COLUMN IF NOT EXISTS stored_at DateTime DEFAULT now();
ALTER TABLE escalations ADD COLUMN IF NOT EXISTS stored_at DateTime DEFAULT now();
ALTER TABLE otel_traces ADD COLUMN IF NOT EXISTS stored_at DateTime DEFAULT now();
ALTER TABLE otel_traces_trace_id_ts ADD COLUMN IF NOT EXISTS stored_at DateTime DEFAULT now();
ALTER TABLE quality_metrics ADD COLUMN IF NOT EXISTS stored_at DateTime DEFAULT now();
ALTER TABLE canary_results ADD COLUMN IF NOT EXISTS stored_at DateTime DEFAULT now();
ALTER TABLE runs ADD COLUMN IF NOT EXISTS stored_at DateTime DEFAULT now();
ALTER TABLE drift_events ADD COLUMN IF NOT EXISTS stored_at DateTime DEFAULT now();
ALTER TABLE mode_changes ADD COLUMN IF NOT EXISTS stored_at DateTime DEFAULT now();
ALTER TABLE invariant_violations ADD COLUMN IF NOT EXISTS stored_at DateTime DEFAULT now();
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS stored_at DateTime DEFAULT now();
ALTER TABLE control_log ADD COLUMN IF NOT EXISTS stored_at DateTime DEFAULT now();

-- What a run cost its process (lucidstream cost reads them): CPU seconds and peak RSS
-- of the process that recorded it, start-up included.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS cpu_seconds Float64 DEFAULT 0;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS peak_rss_mb Float64 DEFAULT 0;
