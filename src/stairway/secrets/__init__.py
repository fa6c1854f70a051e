"""Secrets encrypted at rest in the site database: a data key per secret (AES-256-GCM), wrapped by
the site key, which lives in a 0600 key file or ``STAIRWAY_SITE_KEY`` and never in the database
or a backup. ``SecretStore`` is what a product uses; ``rekey`` rotates the site key while
products keep reading; ``hosts`` moves secrets to another host sealed to that host's key."""

from stairway.secrets.keyring import KeyRing, KeySource, SiteKey
from stairway.secrets.store import SecretStore, rekey

__all__ = ["KeyRing", "KeySource", "SecretStore", "SiteKey", "rekey"]
