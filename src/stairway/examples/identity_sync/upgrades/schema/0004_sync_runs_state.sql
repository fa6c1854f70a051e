-- phase: offline
-- 1.0.4: find interrupted runs quickly on start. A plain CREATE INDEX holds a SHARE lock on
-- sync_runs for the whole build, which stops the service's writes; the 1.0.4 upgrade is not a
-- rolling one, so it builds the index while the service is stopped.
CREATE INDEX sync_runs_state ON sync_runs (state);
