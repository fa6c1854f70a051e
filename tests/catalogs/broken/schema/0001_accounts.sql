-- phase: offline
CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT, note TEXT);
