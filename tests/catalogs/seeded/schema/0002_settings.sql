-- phase: offline
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT,
    weight REAL
);
INSERT INTO settings (key, value, weight) VALUES ('theme', 'it''s; dark', 1.5);
INSERT INTO settings (key, value, weight) VALUES ('motd', NULL, NULL);
CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
