-- phase: sideways
CREATE INDEX accounts_title ON accounts (title);
