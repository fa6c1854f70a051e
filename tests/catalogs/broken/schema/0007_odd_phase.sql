-- phase: sideways
-- transaction: sometimes
CREATE INDEX accounts_title ON accounts (title);
