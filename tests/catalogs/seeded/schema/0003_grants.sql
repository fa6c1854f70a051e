-- phase: offline
CREATE TABLE grants (
    role_id INTEGER NOT NULL REFERENCES roles (id),
    permission TEXT NOT NULL,
    PRIMARY KEY (role_id, permission)
);
INSERT INTO grants (role_id, permission) VALUES (1, 'all');
INSERT INTO grants (role_id, permission) VALUES (2, 'read');
