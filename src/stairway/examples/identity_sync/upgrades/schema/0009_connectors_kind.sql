-- phase: expand
-- loses: nothing
-- 2.1.0 calls a connector's type its kind: add the column beside the old one (2.0.0 ignores it)
-- and copy the types over; 2.1.0 reads `kind`.
ALTER TABLE connectors ADD COLUMN kind TEXT;
UPDATE connectors SET kind = type WHERE kind IS NULL;
-- down:
ALTER TABLE connectors DROP COLUMN kind;
