-- phase: expand
ALTER TABLE orders ADD COLUMN status TEXT DEFAULT 'open';
