"""identity-sync: a small identity synchronisation service, Stairway's example product.

Its catalog (``upgrades/``) walks 1.0.0 → 1.0.4 (a required stop) → 2.0.0; its service
(``service.py``) is a FastAPI app that calls ``stairway.guard()`` before it serves.
"""

BIND_PASSWORD = "connector/1/bind-password"  # the LDAP connector's, sealed in the database
