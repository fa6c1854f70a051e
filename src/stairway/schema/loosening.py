"""Which dropped constraints and indexes only loosen the schema, told from their names.

Dropping a foreign key or a check constraint, or an index that enforces nothing, takes nothing
away from the running release: every write it makes still succeeds, and every query it runs
still works (perhaps slower). Dropping a unique or primary key constraint, or a unique index,
does take something away: the release may rely on the uniqueness (``ON CONFLICT`` needs the
index to exist). The statement alone does not say which kind a name stands for, so the
conventional names are read: those of PostgreSQL's own defaults (``_fkey``, ``_check``,
``_key``, ``_pkey``) and of the usual naming conventions (``fk_``, ``ck_``, ``ix_``, ``uq_``,
``pk_``). A name that follows none of them, or both kinds, is not known to loosen.
"""

from __future__ import annotations

_LOOSE_CONSTRAINT_PREFIXES = ("fk_", "ck_", "chk_")
_LOOSE_CONSTRAINT_SUFFIXES = ("_fkey", "_fk", "_check", "_chk")
_LOOSE_INDEX_PREFIXES = ("ix_", "idx_")
# PostgreSQL names a unique index `..._key` and a primary key `..._pkey`; the conventions name
# them `uq_...` and `pk_...`.
_UNIQUE_MARKERS = ("uq_", "pk_", "_uq", "_key", "_pkey", "unique")


def _bare(name: str) -> str:
    """The last part of a possibly qualified, possibly quoted name, in lower case."""
    return name.rsplit(".", 1)[-1].strip('"').lower()


def _unique_by_name(name: str) -> bool:
    return any(marker in name for marker in _UNIQUE_MARKERS)


def unique_by_name(name: str) -> bool:
    """Whether ``name`` may be a unique or primary key constraint's (or its index's)."""
    return _unique_by_name(_bare(name))


def loose_constraint(name: str) -> bool:
    """Whether constraint ``name`` is named as a foreign key or a check constraint."""
    bare = _bare(name)
    if _unique_by_name(bare):
        return False
    return bare.startswith(_LOOSE_CONSTRAINT_PREFIXES) or bare.endswith(_LOOSE_CONSTRAINT_SUFFIXES)


def loose_index(name: str) -> bool:
    """Whether index ``name`` is named as an index that enforces nothing."""
    bare = _bare(name)
    return bare.startswith(_LOOSE_INDEX_PREFIXES) and not _unique_by_name(bare)
