-- phase: expand
-- loses: nothing
-- 2.1.0 calls a connector's type its kind: add the column beside the old one (2.0.0 ignores it);
-- the next change copies the types over, in a transaction of its own, so that the copy does not
-- run under this change's ACCESS EXCLUSIVE lock on connectors. 2.1.0 reads `kind`.
ALTER TABLE connectors ADD COLUMN kind TEXT;
-- down:
ALTER TABLE connectors DROP COLUMN kind;
