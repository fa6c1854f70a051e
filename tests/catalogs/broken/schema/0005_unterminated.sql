-- phase: offline
INSERT INTO accounts (name) VALUES ('never closed);
