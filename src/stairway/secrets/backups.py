"""Secrets and backups: a backup holds secrets sealed only, records which site keys seal them,
and never holds a key; a restore on a host without those keys is refused before anything is
touched, saying which key is missing and where to get it."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from stairway.errors import BackupError, SecretError
from stairway.secrets.keyring import ENVIRONMENT, KeyRing, KeySource, read_key_file
from stairway.secrets.store import key_ids, retired_file


def sealed_with(engine: Engine) -> dict[str, int]:
    """How many of the site's secrets each site key seals, by key id."""
    with engine.begin() as conn:
        return key_ids(conn)


def keep_key_out(key_file: Path | None, data_dir: Path | None, config: tuple[Path, ...]) -> None:
    """Refuse a site whose key file a backup would carry beside the secrets it opens."""
    if key_file is None:
        return
    key = key_file.resolve()
    if data_dir is not None and key.is_relative_to(data_dir.resolve()):
        raise BackupError(
            f"the site key file {key_file} is inside the data directory {data_dir}, so every "
            "backup would carry the key beside the secrets it opens",
            hint="move it outside the data directory (e.g. beside site.toml) and update "
            "[secrets] key_file",
        )
    if any(key == path.resolve() for path in config):
        raise BackupError(
            f"the site key file {key_file} is listed in config_files",
            hint="remove it from config_files: a backup must not hold the site key",
        )


def check_restorable(needed: dict[str, int], keys: KeySource, backup_id: str) -> None:
    """Every site key the backup's secrets are sealed with must be on this host."""
    if not needed:
        return
    try:
        ring = keys.ring()
    except SecretError as err:
        ring, why = KeyRing(()), err.message
    else:
        why = ""
    missing = {k: n for k, n in needed.items() if ring.find(k) is None}
    if not missing:
        return
    what = ", ".join(f"{n} secret(s) sealed with site key {k}" for k, n in sorted(missing.items()))
    have = why or f"this host has {', '.join(k.id for k in ring.keys)}"
    raise BackupError(
        f"backup {backup_id} holds {what}, and this host does not have that key ({have}); "
        "nothing was restored",
        hint=_where_to_find(missing, keys),
    )


def _where_to_find(missing: dict[str, int], keys: KeySource) -> str:
    retired = retired_file(keys.key_file) if keys.key_file else None
    if retired is not None and retired.is_file():
        kept = {k.id for k in read_key_file(retired).keys}
        if set(missing) <= kept:
            return (
                f"the key was retired by `secrets rekey`; its line is in {retired}: add it to "
                f"{keys.key_file} for the restore, then run `stairway secrets rekey`"
            )
    target = keys.key_file or "the path in [secrets] key_file"
    return (
        f"copy the key file from the host the backup comes from to {target} (mode 0600) or set "
        f"{ENVIRONMENT}; or restore there and move the secrets with `stairway secrets export "
        "--to-host`"
    )
