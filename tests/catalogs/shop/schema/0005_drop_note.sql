-- phase: contract
ALTER TABLE customers DROP COLUMN note;
