"""Which databases a catalog's product runs on, as the catalog declares them: what ``stairway
check`` judges an adopted Alembic history for, where no site says which one it is."""

from __future__ import annotations

from stairway.catalog.manifest import ENGINES, Manifest


def supported_dialects(manifest: Manifest) -> tuple[str, ...]:
    """The engines every ``[[check]] database`` of the catalog admits (those that hold for every
    upgrade, not only ones from below a release), in Stairway's order; every engine Stairway
    supports when the catalog declares none (pure)."""
    admitted = set(ENGINES)
    for check in manifest.check:
        if check.database is not None and check.before is None:
            admitted &= set(check.database)
    return tuple(e for e in ENGINES if e in admitted) or ENGINES  # contradictory: judge all
