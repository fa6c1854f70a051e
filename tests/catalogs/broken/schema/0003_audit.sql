-- phase: expand
CREATE TABLE audit (id INTEGER PRIMARY KEY, what TEXT);
-- down:
DROP TABLE audit;
