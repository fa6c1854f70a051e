-- phase: offline
-- Connectors are referenced by type name; schedules reference connectors.
CREATE TABLE connectors (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    config TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE schedules (
    id INTEGER PRIMARY KEY,
    connector_id INTEGER NOT NULL REFERENCES connectors (id),
    cron TEXT NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE sync_runs (
    id INTEGER PRIMARY KEY,
    schedule_id INTEGER NOT NULL REFERENCES schedules (id),
    state TEXT NOT NULL,
    started_at TEXT NOT NULL
);
