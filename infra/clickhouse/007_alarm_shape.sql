-- What a value alarm says about its change: since when, how large, which way, against what.
-- Added in place (IF NOT EXISTS), so a store written by an earlier version keeps its rows.
ALTER TABLE drift_events ADD COLUMN IF NOT EXISTS onset_time DateTime64(3, 'UTC');
ALTER TABLE drift_events ADD COLUMN IF NOT EXISTS magnitude Float64;
ALTER TABLE drift_events ADD COLUMN IF NOT EXISTS direction LowCardinality(String);
ALTER TABLE drift_events ADD COLUMN IF NOT EXISTS baseline Float64;
ALTER TABLE drift_events ADD COLUMN IF NOT EXISTS baseline_sd Float64
