"""The product's signed release index, and its verification. Pure: bytes in, values out.

A product publishes ``release-index.json``: every release it offers (version, LTS, required
stop, notes URL, and each artifact's SHA-256 and size), an ``expires`` time and an
``index_version`` that grows with every index it publishes; beside it, the Ed25519 signature
``release-index.json.sig`` made with the release key (as for release manifests). A site accepts
an index only when the signature holds, the index has not expired (so a site cannot be frozen on
an old one), and its ``index_version`` is not below the one it accepted last, nor equal to it
with other content (so an older one cannot be replayed). What the site remembers is a
:class:`Seen`; reading and writing it is the adapter's part (``stairway.release_feed``).

The versions are the product's, read in the grammar of the catalog the site uses (``[product]
versions``). An index may declare its grammar (``versions``); one that declares another grammar
than the catalog's is refused, naming both.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Self

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from stairway.errors import PlanError, ReleaseError
from stairway.releases import sign_bytes, signature_holds
from stairway.version_grammars import GrammarName
from stairway.versions import Release, Version, upgrade_path

INDEX_FILE = "release-index.json"
SIGNATURE_FILE = INDEX_FILE + ".sig"
SIZE_LIMIT = 1 << 20  # an index is a list of releases: past this it is not one
SIGNATURE_LIMIT = 1 << 10  # base64 of 64 bytes, with room for line ends
FORMAT = 1

FileName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,254}$")]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
NotesUrl = Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$", max_length=2048)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Artifact(_Strict):
    """One artifact file of a release: its SHA-256 and size in bytes."""

    sha256: Sha256
    size: Annotated[int, Field(ge=0, lt=1 << 63)]


class IndexedRelease(_Strict):
    """A release as the index offers it."""

    version: str
    lts: bool = False
    requires: str | None = None  # a required stop, as the catalog's ``requires``
    notes: NotesUrl | None = None
    artifacts: dict[FileName, Artifact] = {}
    _grammar: GrammarName = PrivateAttr(default="pep440")

    def read_in(self, grammar: GrammarName) -> Self:
        """The release with its versions read in ``grammar``; a ValueError naming the field
        when one is not a version of it."""
        stop = [("requires", self.requires)] if self.requires else []
        for name, text in [("version", self.version), *stop]:
            try:
                Version(text, grammar)
            except ValueError as err:
                raise ValueError(f"{name}: {err}") from None
        self._grammar = grammar
        return self

    @property
    def at(self) -> Version:
        """The release's version, ordered."""
        return Version(self.version, self._grammar)

    def as_release(self) -> Release:
        """The release for path planning (the index knows no schema levels)."""
        requires = Version(self.requires, self._grammar) if self.requires else None
        return Release(self.at, schema=0, lts=self.lts, requires=requires)

    def describe(self) -> str:
        """The version, and ``(LTS)`` when it is one."""
        return f"{self.version} (LTS)" if self.lts else self.version


class ReleaseIndex(_Strict):
    """The whole index: what it offers, until when, and which index it is."""

    format: Annotated[int, Field(ge=FORMAT, le=FORMAT)] = FORMAT
    product: Annotated[str, Field(min_length=1, max_length=200)]
    index_version: Annotated[int, Field(ge=1, lt=1 << 63)]
    expires: AwareDatetime
    releases: tuple[IndexedRelease, ...]
    versions: GrammarName | None = None  # the grammar the publisher declares, if it does
    _grammar: GrammarName = PrivateAttr(default="pep440")

    @property
    def grammar(self) -> GrammarName:
        """The grammar its versions were read in: the catalog's."""
        return self._grammar

    @model_validator(mode="after")
    def _versions_of_one_grammar_listed_once(self, info: ValidationInfo) -> Self:
        grammar = self._grammar = _grammar_for(self.versions, (info.context or {}).get("grammar"))
        for number, release in enumerate(self.releases):
            try:
                release.read_in(grammar)
            except ValueError as err:
                raise ValueError(f"releases.{number}.{err}") from None
        versions = [r.at for r in self.releases]
        if len(set(versions)) != len(versions):
            raise ValueError("a version is listed twice")
        return self

    def encode(self) -> bytes:
        """Compact JSON with sorted keys: the bytes the signature covers."""
        # an index that declares no grammar keeps the bytes it had before there was one
        undeclared = {"versions"} if self.versions is None else None
        data = self.model_dump(mode="json", exclude=undeclared)
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)

    def newer_than(self, current: Version) -> tuple[IndexedRelease, ...]:
        """The releases above ``current``, oldest first."""
        return tuple(sorted((r for r in self.releases if r.at > current), key=lambda r: r.at))


@dataclass(frozen=True)
class Seen:
    """What a site remembers of the last index it accepted: its number and its SHA-256."""

    index_version: int
    sha256: str


@dataclass(frozen=True)
class Verified:
    """An accepted index, and what the site remembers of it from now on."""

    index: ReleaseIndex
    seen: Seen


def sign_index(index: ReleaseIndex, key: Ed25519PrivateKey) -> tuple[bytes, bytes]:
    """The index's bytes and their detached signature, as they are published."""
    body = index.encode()
    return body, sign_bytes(key, body)


def verify_index(
    body: bytes,
    signature: bytes,
    key: Ed25519PublicKey,
    now: datetime,
    seen: Seen | None,
    product: str | None = None,
    grammar: GrammarName | None = None,
) -> Verified:
    """The index ``body`` once every check passed; raises ReleaseError naming the first that
    failed: size, signature, fields (versions in the catalog's ``grammar``), product, expiry,
    replay (in that order, so nothing is parsed before it is known to be signed)."""
    _refuse_oversized(body, signature)
    if not signature_holds(key, body, signature):
        raise ReleaseError(
            f"the signature of {INDEX_FILE} does not verify with the site's release key",
            hint="it was not signed by the key this site trusts (or was changed since): "
            "ignore it and check the source",
        )
    index = parse_index(body, grammar)
    _refuse_other_product(index, product)
    _refuse_expired(index, now)
    accepted = Seen(index.index_version, hashlib.sha256(body).hexdigest())
    _refuse_replay(accepted, seen)
    return Verified(index, accepted)


def parse_index(body: bytes, grammar: GrammarName | None = None) -> ReleaseIndex:
    """The index's fields, its versions read in the catalog's ``grammar`` (None: the one the
    index declares, else PEP 440); raises ReleaseError naming the first field that is wrong,
    or both grammars when the index declares another."""
    try:
        return ReleaseIndex.model_validate_json(body, context={"grammar": grammar})
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the document"
        raise ReleaseError(
            f"{INDEX_FILE} is not a release index: {where}: {first['msg']}",
            hint="ask the publisher for an index written by `stairway release publish-index`",
        ) from None


def path_to(
    index: ReleaseIndex, known: Sequence[Release], current: Version, target: Version
) -> tuple[Version, ...] | None:
    """The releases an upgrade from ``current`` to ``target`` visits, planned as ``plan``
    plans it over the catalog's releases and the index's; None when they cannot plan it
    (a required stop neither knows)."""
    releases = list(known) + [
        r.as_release() for r in index.releases if r.at not in {k.version for k in known}
    ]
    try:
        return tuple(r.version for r in upgrade_path(releases, current, target))
    except PlanError:
        return None


@dataclass(frozen=True)
class Availability:
    """What one check found: the newest release above the site's, and the path to it."""

    current: Version
    newest: IndexedRelease | None  # None: nothing newer is offered
    path: tuple[Version, ...] | None  # None: the path cannot be planned from what is known
    index_version: int
    checked_at: datetime
    expires: datetime | None = None  # the index's; None in a check recorded before it was kept

    def describe(self) -> str:
        """One line: ``2.1.0 available (LTS), path 2.0.0 → 2.1.0``, or "up to date"."""
        if self.newest is None:
            return f"up to date: {self.current} is the newest release the index offers"
        if self.path is None:
            return f"{self.newest.describe()} available; its path from {self.current} is unknown"
        steps = " → ".join(str(v) for v in (self.current, *self.path))
        return f"{self.newest.describe()} available, path {steps}"

    def as_json(self) -> dict[str, Any]:
        """Plain JSON data, as ``--json`` prints it and the site keeps it."""
        return {
            "current": str(self.current),
            "newest": self.newest.model_dump(mode="json") if self.newest else None,
            "path": [str(v) for v in self.path] if self.path is not None else None,
            "index_version": self.index_version,
            "checked_at": self.checked_at.isoformat(),
            "expires": self.expires.isoformat() if self.expires else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], grammar: GrammarName = "pep440") -> Availability:
        """The value ``as_json`` wrote, its versions read in ``grammar``; raises ValueError
        (or KeyError, TypeError) otherwise."""
        newest = data["newest"]
        path = data["path"]
        expires = data.get("expires")
        return cls(
            Version(data["current"], grammar),
            IndexedRelease.model_validate(newest).read_in(grammar) if newest else None,
            tuple(Version(v, grammar) for v in path) if path is not None else None,
            int(data["index_version"]),
            _aware(data["checked_at"]),
            _aware(expires) if expires else None,
        )


def availability(
    index: ReleaseIndex, known: Sequence[Release], current: Version, now: datetime
) -> Availability:
    """What ``index`` offers a site at ``current`` whose catalog knows ``known``."""
    newer = index.newer_than(current)
    newest = newer[-1] if newer else None
    path = path_to(index, known, current, newest.at) if newest else ()
    return Availability(current, newest, path, index.index_version, now, index.expires)


def _aware(text: str) -> datetime:
    """A time with its zone; a ValueError without one (it could not be compared with now)."""
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return when


def _grammar_for(declared: GrammarName | None, catalog: GrammarName | None) -> GrammarName:
    """The grammar the index's versions are read in: the catalog's. An index declaring
    another is refused here, past pydantic (a ReleaseError is no ValueError), naming both."""
    if declared is not None and catalog is not None and declared != catalog:
        raise ReleaseError(
            f"{INDEX_FILE} declares {declared} versions, but this site's catalog writes "
            f"{catalog} versions: they do not compare",
            hint="point the site at its own product's release index, or ask the publisher to "
            f"publish the index with versions = {catalog!r}",
        )
    return catalog or declared or "pep440"


def _refuse_oversized(body: bytes, signature: bytes) -> None:
    for name, data, limit in (
        (INDEX_FILE, body, SIZE_LIMIT),
        (SIGNATURE_FILE, signature, SIGNATURE_LIMIT),
    ):
        if len(data) > limit:
            raise ReleaseError(
                f"{name} is larger than {limit} bytes: it is not a release index",
                hint="check the source; an index that large is refused before it is read",
            )


def _refuse_other_product(index: ReleaseIndex, product: str | None) -> None:
    if product is not None and index.product != product:
        raise ReleaseError(
            f"{INDEX_FILE} is the index of {index.product!r}, not of {product!r}",
            hint="name the index this product publishes",
        )


def _refuse_expired(index: ReleaseIndex, now: datetime) -> None:
    if index.expires <= now:
        raise ReleaseError(
            f"{INDEX_FILE} (index version {index.index_version}) expired at "
            f"{index.expires.isoformat()}; it is now {now.isoformat()}",
            hint="the publisher has not refreshed it, or someone serves an old copy: "
            "check the source, and the clock of this host",
        )


def _refuse_replay(accepted: Seen, seen: Seen | None) -> None:
    if seen is None or accepted == seen:
        return
    if accepted.index_version < seen.index_version:
        raise ReleaseError(
            f"{INDEX_FILE} has index version {accepted.index_version}, older than "
            f"{seen.index_version} which this site accepted before: an old index is replayed",
            hint="check the source (a stale mirror or cache, or an attack); nothing was changed",
        )
    if accepted.index_version == seen.index_version:
        raise ReleaseError(
            f"{INDEX_FILE} has index version {accepted.index_version}, which this site "
            "accepted before with other content",
            hint="a publisher never re-signs an index version with new content: "
            "check the source; nothing was changed",
        )
