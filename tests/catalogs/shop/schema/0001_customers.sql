-- phase: offline
-- The first table of the product.
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    "full name" TEXT NOT NULL,  -- a quoted identifier; with a semicolon in this comment
    note TEXT DEFAULT 'semi;colon'
);
INSERT INTO customers (id, "full name", note) VALUES (1, 'Ada', 'it''s; fine');
