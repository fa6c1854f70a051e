-- phase: contract
-- ... and once no 2.0.0 instance remains, drop the old `type` column.
ALTER TABLE connectors DROP COLUMN type;
