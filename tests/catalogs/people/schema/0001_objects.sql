-- phase: offline
CREATE TABLE objects (
    oid TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    written_by TEXT
);
CREATE INDEX objects_type ON objects (type);
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE jobs (id INTEGER PRIMARY KEY, name TEXT NOT NULL, state TEXT NOT NULL);
