-- phase: offline
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    total NUMERIC(12, 2) NOT NULL DEFAULT 0
);
/* a block comment; with a semicolon */
CREATE INDEX orders_customer ON orders (customer_id);
