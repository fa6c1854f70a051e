"""Signed licence files: who may run which versions of the product until when, checked before
an upgrade so that a site never upgrades into a release its licence does not cover.

A licence file is JSON: ``{"licence": {...}, "algorithm": ..., "signature": base64}``. The
signature covers the licence object serialised with sorted keys and no spaces. Ed25519 is the
default; RSA-4096 licences (PSS or PKCS#1 v1.5 over SHA-256), as products issue them today, are
checked too. The algorithm must match the kind of the vendor's key, so a licence cannot choose a
weaker check than the key was made for. The vendor's public key ships with the catalog
(``[licence] key``); the site says where its licence file is (``[licence] file``).
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from pydantic import BaseModel, ConfigDict, ValidationError

from stairway.errors import LicenceError
from stairway.files import write_atomic
from stairway.versions import Version

ALGORITHMS = ("ed25519", "rsa-pss-sha256", "rsa-pkcs1v15-sha256")


class Terms(BaseModel):
    """A licence's signed terms: who holds it, for which product and versions, and until when."""

    model_config = ConfigDict(extra="allow", frozen=True)  # features etc. ride along, signed

    id: str
    product: str
    customer: str
    issued: date
    expires: date
    versions: str  # a version specifier: ">=2.0,<3" covers every 2.x

    def covers(self, version: Version) -> bool:
        """Whether the licence allows running ``version`` (pre-releases included)."""
        return SpecifierSet(self.versions).contains(str(version), prereleases=True)


class ProblemSeverity(StrEnum):
    """Whether a licence problem stops an upgrade (critical) or only warns."""

    CRITICAL = "critical"
    WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a licence, how serious it is, and what to do about it."""

    severity: ProblemSeverity
    message: str
    hint: str


def signed_bytes(terms: dict[str, Any]) -> bytes:
    """The bytes a licence's signature covers: ``terms`` as JSON with sorted keys and no spaces."""
    return orjson.dumps(terms, option=orjson.OPT_SORT_KEYS)


def check(
    licence_file: Path,
    key_file: Path,
    product: str,
    version: Version,
    today: date | None = None,
    warn_days: int = 30,
) -> tuple[Terms | None, list[Problem]]:
    """The licence's terms and what is wrong with them for running ``version`` of ``product``."""
    try:
        terms = read_verified(licence_file, key_file)
    except LicenceError as err:
        return None, [Problem(ProblemSeverity.CRITICAL, err.message, err.hint)]
    today = today or datetime.now(UTC).date()
    found = []
    if terms.product != product:
        found.append(
            Problem(
                ProblemSeverity.CRITICAL,
                f"the licence {terms.id} is for {terms.product}, not {product}",
                "install the licence issued for this product",
            )
        )
    if terms.expires < today:
        found.append(
            Problem(
                ProblemSeverity.CRITICAL,
                f"the licence {terms.id} expired on {terms.expires}",
                "ask the vendor for a renewed licence and put it at the licence file's path",
            )
        )
    elif (terms.expires - today).days < warn_days:
        found.append(
            Problem(
                ProblemSeverity.WARNING,
                f"the licence {terms.id} expires on {terms.expires}, in "
                f"{(terms.expires - today).days} day(s)",
                "renew it before it lapses",
            )
        )
    if not terms.covers(version):
        found.append(
            Problem(
                ProblemSeverity.CRITICAL,
                f"the licence {terms.id} covers versions {terms.versions}, not {version}",
                f"ask the vendor for a licence that covers {version} before upgrading",
            )
        )
    return terms, found


def read_verified(licence_file: Path, key_file: Path) -> Terms:
    """The terms of ``licence_file``, checked against the vendor's public key in ``key_file``.

    Raises:
        LicenceError: the file is not a licence, its algorithm is unknown or does not fit the
            key, its signature does not verify, or its terms are malformed.
    """
    document = _read_document(licence_file)
    if set(document) != {"licence", "algorithm", "signature"}:
        raise LicenceError(
            f"{licence_file}: a licence file holds exactly licence, algorithm and signature; "
            f"this one holds {', '.join(sorted(document)) or 'nothing'}",
            hint=_REISSUE,
        )
    algorithm = document["algorithm"]
    if algorithm not in ALGORITHMS:
        raise LicenceError(
            f"{licence_file}: unknown signature algorithm {algorithm!r}",
            hint=f"a licence is signed with one of {', '.join(ALGORITHMS)}",
        )
    raw_terms = document.get("licence")
    if not isinstance(raw_terms, dict):
        raise LicenceError(f"{licence_file} holds no licence object", hint=_REISSUE)
    try:
        signature = base64.b64decode(str(document.get("signature", "")), validate=True)
    except ValueError:
        raise LicenceError(f"{licence_file}: the signature is not base64", hint=_REISSUE) from None
    _verify(_public_key(key_file), algorithm, signature, signed_bytes(raw_terms), licence_file)
    try:
        return Terms.model_validate(raw_terms)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise LicenceError(f"{licence_file}: {where}: {first['msg']}", hint=_REISSUE) from None


_REISSUE = "the file is not a licence as the vendor issued it: put back the original"


def _read_document(path: Path) -> dict[str, Any]:
    try:
        document = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise LicenceError(
            f"no licence file at {path}", hint="put the licence from the vendor there"
        ) from None
    except (OSError, orjson.JSONDecodeError) as err:
        raise LicenceError(f"cannot read the licence {path}: {err}", hint=_REISSUE) from None
    if not isinstance(document, dict):
        raise LicenceError(f"{path} is not a licence file", hint=_REISSUE)
    return document


PublicKey = Ed25519PublicKey | rsa.RSAPublicKey


def _public_key(path: Path) -> PublicKey:
    try:
        raw = path.read_bytes()
        if raw.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(raw)
        else:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(raw.strip()))
    except (OSError, ValueError) as err:
        raise LicenceError(
            f"cannot read the licence key {path}: {err}",
            hint="the catalog's [licence] key names the vendor's public key (Ed25519 or RSA)",
        ) from None
    if not isinstance(key, Ed25519PublicKey | rsa.RSAPublicKey):
        raise LicenceError(f"{path} is neither an Ed25519 nor an RSA key", hint="see the catalog")
    return key


def _verify(key: PublicKey, algorithm: str, signature: bytes, body: bytes, where: Path) -> None:
    try:
        if isinstance(key, Ed25519PublicKey) and algorithm == "ed25519":
            key.verify(signature, body)
        elif isinstance(key, rsa.RSAPublicKey) and algorithm == "rsa-pss-sha256":
            pss = padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.MAX_LENGTH)
            key.verify(signature, body, pss, hashes.SHA256())
        elif isinstance(key, rsa.RSAPublicKey) and algorithm == "rsa-pkcs1v15-sha256":
            key.verify(signature, body, padding.PKCS1v15(), hashes.SHA256())
        else:
            raise LicenceError(
                f"{where} says {algorithm}, which the vendor's {_kind(key)} key does not sign",
                hint=_REISSUE,
            )
    except InvalidSignature:
        raise LicenceError(
            f"the signature of the licence {where} does not verify: it was changed after it "
            "was issued, or issued for another vendor's key",
            hint=_REISSUE,
        ) from None


def _kind(key: PublicKey) -> str:
    return "Ed25519" if isinstance(key, Ed25519PublicKey) else f"RSA-{key.key_size}"


# --- issuing (the vendor's side) ---------------------------------------------------------------


def new_terms(
    product: str, customer: str, versions: str, expires: str, licence_id: str | None = None
) -> dict[str, Any]:
    """The terms of a licence issued today, under ``licence_id`` or a new random id."""
    return {
        "id": licence_id or uuid.uuid4().hex[:12],
        "product": product,
        "customer": customer,
        "issued": datetime.now(UTC).date().isoformat(),
        "expires": expires,
        "versions": versions,
    }


def issue(private_key: Path, terms: dict[str, Any], out: Path) -> Terms:
    """Sign ``terms`` with the vendor's PEM private key (Ed25519, or RSA with PSS)."""
    try:
        checked = Terms.model_validate(terms)
        SpecifierSet(checked.versions)
    except ValidationError as err:
        raise LicenceError(
            f"not valid licence terms: {err.errors()[0]['msg']}",
            hint="give every term: id, customer, product, issued, expires (YYYY-MM-DD) and "
            "versions",
        ) from None
    except InvalidSpecifier as err:
        raise LicenceError(
            f"--versions: {err}", hint='a version specifier, e.g. ">=2.0,<3"'
        ) from None
    body = checked.model_dump(mode="json")
    key = serialization.load_pem_private_key(private_key.read_bytes(), password=None)
    if isinstance(key, Ed25519PrivateKey):
        algorithm, signature = "ed25519", key.sign(signed_bytes(body))
    elif isinstance(key, rsa.RSAPrivateKey):
        pss = padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.MAX_LENGTH)
        algorithm, signature = "rsa-pss-sha256", key.sign(signed_bytes(body), pss, hashes.SHA256())
    else:
        raise LicenceError(
            f"{private_key} is neither an Ed25519 nor an RSA key",
            hint="sign with the vendor's PEM private key, Ed25519 or RSA (`openssl genpkey "
            "-algorithm ed25519`)",
        )
    document = {"licence": body, "algorithm": algorithm, "signature": _b64(signature)}
    write_atomic(out, orjson.dumps(document, option=orjson.OPT_INDENT_2))
    return checked


def generate_key(folder: Path) -> tuple[Path, Path]:
    """The vendor's Ed25519 pair: ``licence.key`` (PEM, 0600) and ``licence.pub``."""
    folder.mkdir(parents=True, exist_ok=True)
    private, public = folder / "licence.key", folder / "licence.pub"
    if private.exists():
        raise LicenceError(f"{private} exists already", hint="keep it; or choose another --out")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_atomic(private, pem)  # created 0600
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    write_atomic(public, base64.b64encode(raw) + b"\n")
    public.chmod(0o644)
    return private, public


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
