-- phase: contract
-- ... and once no 1.x instance remains, drop the old column.
ALTER TABLE users DROP COLUMN full_name;
