-- phase: offline
-- Stored documents (users' profiles, connector configs) kept as JSON.
CREATE TABLE objects (
    oid TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    written_by TEXT NOT NULL
);
CREATE INDEX objects_type ON objects (type);
