-- phase: expand
-- 1.0.4: find interrupted runs quickly on start.
CREATE INDEX sync_runs_state ON sync_runs (state);
