-- phase: expand
-- loses: every customer's email address
ALTER TABLE customers ADD COLUMN email TEXT;
-- down:
ALTER TABLE customers DROP COLUMN email;
