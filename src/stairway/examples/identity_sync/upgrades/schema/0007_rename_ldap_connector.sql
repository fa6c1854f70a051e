-- phase: offline
-- The "ldap" connector type is now "ldap-v3"; schedules follow their connector by id.
UPDATE connectors SET type = 'ldap-v3' WHERE type = 'ldap';
