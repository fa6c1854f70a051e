-- phase: expand
-- Users may carry a preferred locale; the old release never reads it.
ALTER TABLE objects ADD COLUMN locale TEXT;
