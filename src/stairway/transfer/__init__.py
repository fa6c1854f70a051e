"""Export and import of stored objects between sites and database engines."""
