"""The release index on both sides: a product publishing it, and a site checking it.

The publisher lists its releases in a small TOML file; :func:`publish` computes each artifact's
SHA-256 and size, numbers the index one above the one already in the output directory, and
writes ``release-index.json`` and its signature. A site reads both from a URL or a directory
(``--from``, else ``[site] release_index``), verifies them with ``stairway.release_index``
against the index version it accepted last, and only when the index is accepted writes, in one
atomic replace, that index version and what the check found. ``status`` reads the latter and
never the network.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from stairway import release_index, releases
from stairway.errors import ReleaseError, SiteError
from stairway.files import write_atomic
from stairway.parsing import toml_document
from stairway.release_index import (
    INDEX_FILE,
    SIGNATURE_FILE,
    Availability,
    IndexedRelease,
    ReleaseIndex,
    Seen,
)
from stairway.release_source import read_capped
from stairway.site import Site
from stairway.version_grammars import GrammarName
from stairway.versions import Release, Version

log = logging.getLogger(__name__)


# --- publishing (the product's side) -------------------------------------------------------------


class _SpecRelease(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str
    lts: bool = False
    requires: str | None = None
    notes: str | None = None
    artifacts: list[Path] = []  # relative to the listing file


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    product: str
    versions: GrammarName | None = None  # declared in the index: how the product writes them
    release: list[_SpecRelease]


def publish(
    listing: Path, key_file: Path, out: Path, valid: timedelta, index_version: int | None = None
) -> ReleaseIndex:
    """Write ``release-index.json`` and its ``.sig`` into ``out`` from the releases ``listing``
    names; the index version is ``index_version``, else one above the index already in ``out``
    (a lower or equal one is refused: every site that saw the old one would refuse it)."""
    spec = _read_spec(listing)
    previous = _published_version(out)
    number = index_version if index_version is not None else previous + 1
    if number <= previous:
        raise ReleaseError(
            f"{out / INDEX_FILE} already has index version {previous}; {number} is not above it",
            hint="leave --index-version out (it counts on by itself), or give a higher one",
        )
    index = _index(spec, listing.parent, number, datetime.now(UTC) + valid)
    body, signature = release_index.sign_index(index, releases.load_private_key(key_file))
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / INDEX_FILE, body)
    write_atomic(out / SIGNATURE_FILE, signature)
    return index


def _read_spec(listing: Path) -> _Spec:
    hint = (
        "list each release as [[release]] with version, and optionally lts, requires, notes "
        "and artifacts (docs/releases.md)"
    )
    try:
        return _Spec.model_validate(toml_document(listing.read_text("utf-8")))
    except ValidationError as err:
        raise ReleaseError(f"{listing}: {_first_field(err)}", hint=hint) from None
    except OSError as err:
        raise ReleaseError(f"{listing}: cannot read: {err.strerror or err}", hint=hint) from None
    except ValueError as err:  # not UTF-8, not TOML
        raise ReleaseError(f"{listing}: {err}", hint=hint) from None


def _first_field(err: ValidationError) -> str:
    first = err.errors()[0]
    return ".".join(str(part) for part in first["loc"]) + f": {first['msg']}"


def _index(spec: _Spec, base: Path, number: int, expires: datetime) -> ReleaseIndex:
    entries = [_entry(release, base) for release in spec.release]
    data = {"product": spec.product, "index_version": number, "expires": expires}
    data |= {"versions": spec.versions} if spec.versions else {}
    try:
        return ReleaseIndex.model_validate({**data, "releases": tuple(entries)}, strict=False)
    except ValidationError as err:
        raise ReleaseError(
            f"the releases listed do not make an index: {_first_field(err)}",
            hint="fix the listing: versions as 2.1.0, notes as an http(s) URL",
        ) from None


def _entry(release: _SpecRelease, base: Path) -> dict[str, Any]:
    artifacts = {}
    for path in (base / p for p in release.artifacts):
        if not path.is_file():
            raise ReleaseError(f"{path} is missing", hint="build the release artifacts first")
        artifacts[path.name] = {"sha256": releases.sha256_of(path), "size": path.stat().st_size}
    return {**release.model_dump(exclude={"artifacts"}), "artifacts": artifacts}


def _published_version(out: Path) -> int:
    """The index version already published in ``out`` (0 when none): the publisher's own
    file, read for its number only."""
    try:
        return ReleaseIndex.model_validate_json((out / INDEX_FILE).read_bytes()).index_version
    except FileNotFoundError:
        return 0
    except (OSError, ValidationError) as err:
        raise ReleaseError(
            f"{out / INDEX_FILE} is there but cannot be read: {err}",
            hint="give --index-version above the last one published",
        ) from None


# --- checking (the site's side) ------------------------------------------------------------------


def state_file(site: Site) -> Path:
    """Where a site keeps the index version it accepted last and its last check: beside the
    site file, in ``.stairway/`` (outside the data directory and the backups, so a restore
    cannot put an older index version back)."""
    return site.path.resolve().parent / ".stairway" / f"{site.path.stem}.release-index.json"


def check(
    site: Site,
    current: Version,
    known: Sequence[Release],
    product: str | None,
    source: str | None = None,
) -> Availability:
    """Fetch and verify the index, its versions read in the grammar of ``current`` (the
    catalog's), then remember it and what it offers the site at ``current``.

    Raises ReleaseError (nothing written) when the index is refused, SiteError when no key or
    source is configured."""
    verified = fetch_index(site, product, source, current.grammar)
    found = release_index.availability(verified.index, known, current, datetime.now(UTC))
    _remember(state_file(site), verified.seen, found)
    return found


def fetch_index(
    site: Site, product: str | None, source: str | None = None, grammar: GrammarName | None = None
) -> release_index.Verified:
    """Read the index and its signature from ``source`` (else ``[site] release_index``) and
    verify them as ``check`` does, against the index version this site accepted last, its
    versions in the catalog's ``grammar`` (None: no catalog yet); nothing is written. Raises
    ReleaseError when the index is refused."""
    where, key = _source(site, source), _key(site)
    body = read_capped(where, INDEX_FILE, release_index.SIZE_LIMIT)
    signature = read_capped(where, SIGNATURE_FILE, release_index.SIGNATURE_LIMIT)
    return release_index.verify_index(
        body,
        signature,
        releases.load_public_key(key),
        datetime.now(UTC),
        _seen(state_file(site)),
        product,
        grammar,
    )


def last_check(site: Site, grammar: GrammarName = "pep440") -> Availability | None:
    """What the last accepted check found, read in the catalog's ``grammar``; None when there
    was none or it cannot be read (the next ``release check`` says why)."""
    try:
        data = orjson.loads(state_file(site).read_bytes())
        return Availability.from_json(data["last_check"], grammar)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as err:
        log.warning("the last release check cannot be read: %s", err)
        return None


def newer_than_site(found: Availability | None, release: str | None) -> IndexedRelease | None:
    """The release a past check found that is still above the site's ``release`` (the site may
    have been upgraded since the check)."""
    if found is None or found.newest is None or release is None:
        return None
    return found.newest if found.newest.at > Version(release, found.current.grammar) else None


def next_steps(version: str) -> str:
    """What an operator runs to take release ``version``."""
    return f"`stairway release fetch {version}` then `stairway upgrade --to {version}`"


def _source(site: Site, given: str | None) -> str:
    source = given or site.site.release_index
    if source is None:
        raise SiteError(
            "no release index to check: neither --from nor [site] release_index names one",
            hint="pass --from URL|DIR, or set release_index in the [site] table (docs/site.md)",
        )
    return source


def _key(site: Site) -> Path:
    if site.site.release_key is None:
        raise SiteError(
            "site.toml names no release_key to verify the release index with",
            hint="set [site] release_key to the product's release.pub",
        )
    return site.site.release_key


def _seen(path: Path) -> Seen | None:
    """The index this site accepted last; a state file that cannot be read is refused rather
    than taken for none, which would let any older index in."""
    try:
        data = orjson.loads(path.read_bytes())["seen"]
        return Seen(int(data["index_version"]), str(data["sha256"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ReleaseError(
            f"{path}: the index version this site accepted last cannot be read ({err})",
            hint="restore the file, or remove it to accept the next signed index afresh "
            "(its replay protection starts again from that index)",
        ) from None


def _remember(path: Path, seen: Seen, found: Availability) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "seen": {"index_version": seen.index_version, "sha256": seen.sha256},
        "last_check": found.as_json(),
    }
    write_atomic(path, orjson.dumps(state, option=orjson.OPT_INDENT_2))
