-- phase: expand
ALTER TABLE accounts DROP COLUMN note;
ALTER TABLE accounts RENAME COLUMN name TO title;
