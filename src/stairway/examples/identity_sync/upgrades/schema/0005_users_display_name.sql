-- phase: expand
-- loses: the display names set after the upgrade
-- 2.0.0 renames full_name to display_name: first add the new column (old code ignores it) ...
ALTER TABLE users ADD COLUMN display_name TEXT;
-- down:
ALTER TABLE users DROP COLUMN display_name;
