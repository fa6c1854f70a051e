-- phase: offline
CREATE TABLE objects (
    oid TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    written_by TEXT
);
CREATE INDEX objects_type ON objects (type);
