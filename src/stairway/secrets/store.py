"""Secrets in the site database, sealed by envelope encryption (AES-256-GCM both ways).

Each secret gets its own random data key; the value is sealed with it (bound to the secret's
name, so a sealed value moved to another name does not open), and the data key is sealed with
the site key (bound to the name and the key's id). The database and every backup of it hold only
sealed values and sealed data keys: without the site key they are noise.

Rotating the site key re-seals only the small data keys, a batch per transaction, while products
read: a product that meets a key id it does not know reloads the key file first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Column, Connection, Engine, LargeBinary, MetaData, String, Table, select

from stairway import audit, faults
from stairway.errors import SecretError
from stairway.progress import Progress
from stairway.secrets.keyring import KeyRing, KeySource, SiteKey, read_key_file, write_key_file

NONCE = 12
BATCH = 200

metadata = MetaData()
secrets_table = Table(
    "stairway_secrets",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("key_id", String(32), nullable=False),  # the site key that seals the data key
    Column("data_key", LargeBinary, nullable=False),  # nonce + the data key sealed by the site key
    Column("value", LargeBinary, nullable=False),  # nonce + the value sealed by the data key
    Column("updated", String(40), nullable=False),
)


def ensure_table(conn: Connection) -> None:
    """Create ``stairway_secrets`` if it does not exist yet."""
    metadata.create_all(conn, checkfirst=True)


@dataclass(frozen=True)
class Sealed:
    """A secret as the database holds it: the id of the site key that seals its data key, the
    sealed data key and the sealed value.
    """

    key_id: str
    data_key: bytes
    value: bytes


def seal(site_key: SiteKey, name: str, value: bytes) -> Sealed:
    """Seal ``value`` with a new data key, itself sealed by ``site_key``; both bound to ``name``."""
    data_key = AESGCM.generate_key(bit_length=256)
    sealed_value = _encrypt(data_key, value, f"value:{name}")
    return Sealed(site_key.id, _wrap(site_key, name, data_key), sealed_value)


def unseal(ring: KeyRing, name: str, sealed: Sealed) -> bytes:
    """The plain value of secret ``name``.

    Raises:
        SecretError: ``ring`` lacks the site key that sealed it, or it does not decrypt (it was
            changed, or copied from another secret's row).
    """
    site_key = ring.find(sealed.key_id)
    if site_key is None:
        raise SecretError(
            f"secret {name!r} is sealed with site key {sealed.key_id}, which this host does not "
            f"have (it has {', '.join(k.id for k in ring.keys)})",
            hint="copy the key file from the host the secrets come from (mode 0600), or move "
            "the secrets with `stairway secrets export --to-host` / `secrets import`",
        )
    try:
        data_key = _decrypt(site_key.material, sealed.data_key, _key_label(name, site_key))
        return _decrypt(data_key, sealed.value, f"value:{name}")
    except InvalidTag:
        raise SecretError(
            f"secret {name!r} does not decrypt: its sealed value or data key was changed, or "
            "it was copied from another secret",
            hint="set it again with `stairway secrets set`; restore the database if others are",
        ) from None


def rewrap(old: SiteKey, new: SiteKey, name: str, data_key: bytes) -> bytes:
    """The data key sealed by ``old``, sealed by ``new`` instead; the value is not touched."""
    try:
        plain = _decrypt(old.material, data_key, _key_label(name, old))
    except InvalidTag:
        raise SecretError(
            f"the data key of secret {name!r} does not decrypt with site key {old.id}",
            hint="it was changed in the database: set the secret again, then rekey",
        ) from None
    return _wrap(new, name, plain)


def _wrap(site_key: SiteKey, name: str, data_key: bytes) -> bytes:
    return _encrypt(site_key.material, data_key, _key_label(name, site_key))


def _key_label(name: str, site_key: SiteKey) -> str:
    return f"data-key:{site_key.id}:{name}"


def _encrypt(key: bytes, plain: bytes, label: str) -> bytes:
    nonce = os.urandom(NONCE)
    return nonce + AESGCM(key).encrypt(nonce, plain, label.encode())


def _decrypt(key: bytes, sealed: bytes, label: str) -> bytes:
    return AESGCM(key).decrypt(sealed[:NONCE], sealed[NONCE:], label.encode())


class SecretStore:
    """What a product uses: ``put``, ``get``, ``delete``, ``names``.

    Args:
        engine: The engine of the site database, which holds the sealed secrets.
        keys: Where this host's site key ring comes from (the key file, or the
            ``STAIRWAY_SITE_KEY`` environment variable).
    """

    def __init__(self, engine: Engine, keys: KeySource) -> None:
        self.engine, self.keys = engine, keys

    def put(self, name: str, value: str | bytes, actor: str = "stairway") -> None:
        """Seal ``value`` under the current site key and store it as ``name``, replacing any.

        The audit log records the name and the key id, never the value.

        Args:
            name: Up to 200 printable characters.
            value: The secret; text is stored as UTF-8.
            actor: Who set it, for the audit log.

        Raises:
            SecretError: The name is not a valid secret name, or no site key can be read.
        """
        raw = value.encode() if isinstance(value, str) else value
        _check_name(name)
        sealed = seal(self.keys.ring().current, name, raw)
        with self.engine.begin() as conn:
            ensure_table(conn)
            upsert(conn, name, sealed)
            audit.append(conn, "secret.set", {"name": name, "key": sealed.key_id}, actor=actor)

    def get(self, name: str) -> bytes:
        """The value of secret ``name``, unsealed.

        A secret sealed under a key this process has not read yet (the key was rotated since)
        makes it read the key file again first.

        Args:
            name: The secret's name.

        Raises:
            SecretError: There is no such secret, no site key can be read, this host lacks
                the site key that seals it, or its sealed value was changed or copied from
                another secret.
        """
        with self.engine.connect() as conn:
            sealed = _read(conn, name)
        if sealed is None:
            raise SecretError(f"no secret {name!r}", hint="`stairway secrets list` names them")
        ring = self.keys.ring()
        if ring.find(sealed.key_id) is None:
            ring = self.keys.reload()  # the key was rotated since this process read the file
        return unseal(ring, name, sealed)

    def delete(self, name: str, actor: str = "stairway") -> None:
        """Remove secret ``name``; the audit log records it.

        Args:
            name: The secret's name.
            actor: Who removed it, for the audit log.

        Raises:
            SecretError: There is no such secret.
        """
        with self.engine.begin() as conn:
            ensure_table(conn)
            gone = conn.execute(secrets_table.delete().where(secrets_table.c.name == name))
            if not gone.rowcount:
                raise SecretError(f"no secret {name!r}", hint="`stairway secrets list`")
            audit.append(conn, "secret.delete", {"name": name}, actor=actor)

    def names(self) -> list[tuple[str, str, str]]:
        """(name, key id, updated) of every secret: never a value."""
        with self.engine.begin() as conn:
            ensure_table(conn)
            rows = conn.execute(
                select(
                    secrets_table.c.name, secrets_table.c.key_id, secrets_table.c.updated
                ).order_by(secrets_table.c.name)
            ).all()
        return [(r.name, r.key_id, r.updated) for r in rows]


def key_ids(conn: Connection) -> dict[str, int]:
    """How many secrets each site key seals; empty when the site has none (read only: the
    table is not created, so a backup or a rehearsal never writes the live database)."""
    if not conn.dialect.has_table(conn, secrets_table.name):
        return {}
    rows = conn.execute(select(secrets_table.c.key_id)).scalars()
    found: dict[str, int] = {}
    for key_id in rows:
        found[key_id] = found.get(key_id, 0) + 1
    return found


def _check_name(name: str) -> None:
    if not name or len(name) > 200 or not name.isprintable():
        raise SecretError(
            f"{name!r} is not a secret name", hint="use up to 200 printable characters"
        )


def _read(conn: Connection, name: str) -> Sealed | None:
    if not conn.dialect.has_table(conn, secrets_table.name):
        return None
    row = conn.execute(select(secrets_table).where(secrets_table.c.name == name)).first()
    return None if row is None else Sealed(row.key_id, bytes(row.data_key), bytes(row.value))


def upsert(conn: Connection, name: str, sealed: Sealed) -> None:
    """Write ``sealed`` as secret ``name``, replacing its sealed value if it has one."""
    values = {
        "key_id": sealed.key_id,
        "data_key": sealed.data_key,
        "value": sealed.value,
        "updated": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    changed = conn.execute(
        secrets_table.update().where(secrets_table.c.name == name).values(**values)
    )
    if not changed.rowcount:
        conn.execute(secrets_table.insert().values(name=name, **values))


# --- rotation ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rekeyed:
    """What a rotation of the site key did.

    Attributes:
        old: The ids of the site keys retired.
        new: The id of the new current site key.
        secrets: How many data keys were re-sealed under the new key.
    """

    old: tuple[str, ...]  # the key ids retired
    new: str
    secrets: int  # data keys re-sealed


def rekey(engine: Engine, keys: KeySource, progress: Progress[None] | None = None) -> Rekeyed:
    """Rotate the site key with products running: (1) the key file gets a new current key and
    keeps the old ones, so every reader can open every secret; (2) each data key is re-sealed
    by the new key, a batch per transaction; (3) once none is left under an old key, the old
    keys leave the file. A rotation cut short is finished by running it again.

    Retired keys are kept in a file beside the key file (``retired_file``): backups taken before
    the rotation need them.

    Args:
        engine: The engine of the site database.
        keys: The site's key source; it must come from a key file.
        progress: Told after each batch how many data keys are re-sealed so far.

    Returns:
        The retired key ids, the new key's id and how many data keys were re-sealed.

    Raises:
        SecretError: The key comes from the environment, which cannot be rewritten, or a
            secret is sealed under a key the key file does not hold.
    """
    if not keys.writable:
        raise SecretError(
            "the site key comes from the environment, which `rekey` cannot rewrite",
            hint="put the key in a key file ([secrets] key_file, mode 0600) and unset "
            "STAIRWAY_SITE_KEY, then rekey",
        )
    assert keys.key_file is not None
    ring = keys.reload()
    if len(ring.keys) == 1:  # more than one: a rotation was cut short, finish it
        ring = KeyRing((SiteKey.generate(), *ring.keys))
        write_key_file(keys.key_file, ring)
    done = 0
    for batch in _old_batches(engine, ring.current.id):
        done += _rewrap_batch(engine, ring, batch)
        _fault("rekey:batch")
        if progress:
            progress(done, None, None)
    retired = tuple(k.id for k in ring.keys[1:])
    _keep_retired(keys.key_file, ring.keys[1:])
    write_key_file(keys.key_file, KeyRing((ring.current,)))
    keys.reload()
    with engine.begin() as conn:
        data = {"new": ring.current.id, "retired": list(retired), "secrets": done}
        audit.append(conn, "secrets.rekey", data)
    return Rekeyed(retired, ring.current.id, done)


def _fault(point: str) -> None:
    faults.point(point)  # fault-injection tests: die as a power cut would


def retired_file(key_file: Path) -> Path:
    """Where ``rekey`` keeps retired keys: backups taken before a rotation need them."""
    return key_file.with_name(key_file.name + ".retired")


def _keep_retired(key_file: Path, old: tuple[SiteKey, ...]) -> None:
    where = retired_file(key_file)
    kept = read_key_file(where).keys if where.is_file() else ()
    known = {k.id for k in kept}
    write_key_file(where, KeyRing((*kept, *(k for k in old if k.id not in known))))


def _old_batches(engine: Engine, current: str) -> Iterator[list[str]]:
    while True:
        with engine.begin() as conn:
            ensure_table(conn)
            names = list(
                conn.execute(
                    select(secrets_table.c.name)
                    .where(secrets_table.c.key_id != current)
                    .order_by(secrets_table.c.name)
                    .limit(BATCH)
                ).scalars()
            )
        if not names:
            return
        yield names


def _rewrap_batch(engine: Engine, ring: KeyRing, names: list[str]) -> int:
    done = 0
    with engine.begin() as conn:
        rows = conn.execute(select(secrets_table).where(secrets_table.c.name.in_(names))).all()
        for row in rows:
            old = ring.find(row.key_id)
            if old is None:
                raise SecretError(
                    f"secret {row.name!r} is sealed with site key {row.key_id}, which the key "
                    "file does not hold",
                    hint="add that key's line to the key file (from where it was kept), then "
                    "run rekey again",
                )
            sealed = rewrap(old, ring.current, row.name, bytes(row.data_key))
            conn.execute(
                secrets_table.update()
                .where(secrets_table.c.name == row.name)
                .where(secrets_table.c.key_id == row.key_id)  # unless re-set meanwhile
                .values(key_id=ring.current.id, data_key=sealed)
            )
            done += 1
    return done
