-- phase: offline
INSERT INTO roles (name) VALUES ('auditor');
