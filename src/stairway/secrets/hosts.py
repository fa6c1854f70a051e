"""Moving secrets to another host without writing them in clear anywhere.

The new host makes a host key pair (``secrets host-key``: X25519, the private half 0600) and
hands over the public half. The old host opens each secret in memory and seals it to that public
key with HPKE (RFC 9180: X25519, HKDF-SHA256, AES-256-GCM), bound to the secret's name; the
bundle is a JSON file of sealed values. The new host opens them in memory with its private key
and seals each under its own site key. Only the new host can read the bundle.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from sqlalchemy import Engine, select

from stairway import audit
from stairway.errors import SecretError
from stairway.files import write_atomic
from stairway.secrets.keyring import KeySource
from stairway.secrets.store import Sealed, ensure_table, seal, secrets_table, unseal, upsert

FORMAT = 1
SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
PRIVATE, PUBLIC = "host.key", "host.pub"


def make_host_key(folder: Path) -> tuple[Path, Path]:
    """Make this host's key pair in ``folder``; returns the private and public paths.

    The private half is written 0600, the public half 0644.

    Raises:
        SecretError: A private host key is in ``folder`` already.
    """
    folder.mkdir(parents=True, exist_ok=True)
    private, public = folder / PRIVATE, folder / PUBLIC
    if private.exists():
        raise SecretError(
            f"{private} exists already", hint="use it, or remove it first if it is not in use"
        )
    key = X25519PrivateKey.generate()
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    write_atomic(private, base64.b64encode(raw) + b"\n")  # created 0600
    write_atomic(public, base64.b64encode(_public_raw(key.public_key())) + b"\n")
    public.chmod(0o644)
    return private, public


@dataclass(frozen=True)
class Moved:
    """The secrets a bundle moved, by name, and the host key they were sealed to."""

    names: tuple[str, ...]
    recipient: str  # the fingerprint of the host key they were sealed to


def export_bundle(engine: Engine, keys: KeySource, host_public: Path, out: Path) -> Moved:
    """Seal every secret of the site to another host's public key, in a bundle file.

    Each secret is opened with the site key ring and sealed with HPKE to ``host_public``; the
    export is recorded in the audit log.

    Args:
        engine: The site's database.
        keys: The site key ring the secrets are sealed under now.
        host_public: The public half of the new host's key (``host.pub``).
        out: The bundle file to write.

    Raises:
        SecretError: The public key does not read, or a secret does not open with the ring.
    """
    recipient = _read_public(host_public)
    ring = keys.ring()
    entries, names = [], []
    with engine.begin() as conn:
        ensure_table(conn)
        rows = conn.execute(select(secrets_table).order_by(secrets_table.c.name)).all()
        for row in rows:
            sealed = Sealed(row.key_id, bytes(row.data_key), bytes(row.value))
            value = unseal(ring, row.name, sealed)
            moved = SUITE.encrypt(value, recipient, info=_info(row.name))
            entries.append({"name": row.name, "sealed": base64.b64encode(moved).decode()})
            names.append(row.name)
        fingerprint = _fingerprint(recipient)
        audit.append(conn, "secrets.export", {"names": names, "to_host": fingerprint})
    bundle = {"format": FORMAT, "recipient": fingerprint, "secrets": entries}
    write_atomic(out, orjson.dumps(bundle, option=orjson.OPT_INDENT_2))
    return Moved(tuple(names), fingerprint)


def import_bundle(engine: Engine, keys: KeySource, bundle: Path, host_private: Path) -> Moved:
    """Every secret of the bundle, sealed under this host's site key, in one transaction."""
    private = _read_private(host_private)
    fingerprint = _fingerprint(private.public_key())
    entries, recipient = _read_bundle(bundle)
    if recipient != fingerprint:
        raise SecretError(
            f"{bundle} was sealed for host key {recipient}; {host_private} is {fingerprint}",
            hint="give the host key the bundle was made for, or export again with this host's "
            f"{PUBLIC}",
        )
    site_key = keys.ring().current
    with engine.begin() as conn:
        ensure_table(conn)
        for name, moved in entries:
            try:
                value = SUITE.decrypt(moved, private, info=_info(name))
            except (InvalidTag, ValueError):
                raise SecretError(
                    f"secret {name!r} in {bundle} does not open with {host_private}",
                    hint="the bundle was changed or cut: export it again; nothing was imported",
                ) from None
            upsert(conn, name, seal(site_key, name, value))
        names = [name for name, _ in entries]
        audit.append(conn, "secrets.import", {"names": names, "key": site_key.id})
    return Moved(tuple(names), fingerprint)


def _read_bundle(path: Path) -> tuple[list[tuple[str, bytes]], str]:
    try:
        data = orjson.loads(path.read_bytes())
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a secrets bundle of format {FORMAT}")
        entries = [(str(e["name"]), base64.b64decode(e["sealed"])) for e in data["secrets"]]
        return entries, str(data["recipient"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SecretError(
            f"cannot read the secrets bundle {path}: {err}",
            hint="give the file `stairway secrets export --to-host` wrote",
        ) from None


def _read_private(path: Path) -> X25519PrivateKey:
    try:
        return X25519PrivateKey.from_private_bytes(base64.b64decode(path.read_bytes().strip()))
    except (OSError, ValueError) as err:
        raise SecretError(
            f"cannot read the host key {path}: {err}",
            hint=f"give the {PRIVATE} that `stairway secrets host-key` wrote on this host",
        ) from None


def _read_public(path: Path) -> X25519PublicKey:
    try:
        return X25519PublicKey.from_public_bytes(base64.b64decode(path.read_bytes().strip()))
    except (OSError, ValueError) as err:
        raise SecretError(
            f"cannot read the host's public key {path}: {err}",
            hint=f"give the {PUBLIC} that `stairway secrets host-key` wrote on the new host",
        ) from None


def _public_raw(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _fingerprint(key: X25519PublicKey) -> str:
    return hashlib.sha256(_public_raw(key)).hexdigest()[:16]


def _info(name: str) -> bytes:
    return f"stairway secrets bundle v{FORMAT}: {name}".encode()
