"""The signed release index: a product publishes it, a site checks it from a URL (a real HTTP
server on 127.0.0.1) or a directory, and refuses an index that is expired, replayed, re-signed
with other content under the same index version, signed by another key, changed, oversized or
malformed, remembering nothing then; `status` says, from the last check alone, that a newer
release is there and what to run."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cli_runner import stairway
from stairway import release_feed, release_index, releases
from stairway.errors import ReleaseError
from stairway.release_index import INDEX_FILE, SIGNATURE_FILE, ReleaseIndex, Seen, verify_index
from stairway.site import load_site
from stairway.version_grammars import GrammarName
from stairway.versions import Release, Version

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
KEY = Ed25519PrivateKey.generate()
OTHER_KEY = Ed25519PrivateKey.generate()
DIGEST = "ab" * 32


def index(number: int = 3, expires: datetime = NOW + timedelta(days=30), **extra: object) -> bytes:
    """An index of three releases, 2.0.0 behind the required stop 1.1.0 (LTS)."""
    entries = [
        {"version": "1.0.0"},
        {"version": "1.1.0", "lts": True},
        {
            "version": "2.0.0",
            "requires": "1.1.0",
            "notes": "https://example.org/helpdesk/2.0.0",
            "artifacts": {"helpdesk-2.0.0.tar.zst": {"sha256": DIGEST, "size": 1234}},
        },
    ]
    data = {"product": "helpdesk", "index_version": number, "expires": expires}
    parsed = ReleaseIndex.model_validate({**data, "releases": entries, **extra}, strict=False)
    return parsed.encode()


def signed(body: bytes, key: Ed25519PrivateKey = KEY) -> tuple[bytes, bytes]:
    return body, releases.sign_bytes(key, body)


def verify(body: bytes, signature: bytes, seen: Seen | None = None) -> release_index.Verified:
    return verify_index(body, signature, KEY.public_key(), NOW, seen, "helpdesk")


def refused(body: bytes, signature: bytes, seen: Seen | None = None) -> str:
    with pytest.raises(ReleaseError) as caught:
        verify(body, signature, seen)
    assert caught.value.hint
    return caught.value.message


# --- the verification, pure ----------------------------------------------------------------------


def test_a_good_index_is_accepted_and_remembered_by_number_and_digest() -> None:
    accepted = verify(*signed(index(3)))
    assert accepted.seen.index_version == 3 and len(accepted.seen.sha256) == 64
    assert [r.version for r in accepted.index.releases] == ["1.0.0", "1.1.0", "2.0.0"]
    assert verify(*signed(index(3)), seen=accepted.seen).seen == accepted.seen, "same again"
    assert verify(*signed(index(4)), seen=accepted.seen).seen.index_version == 4


def test_an_expired_index_is_refused_naming_its_expiry_and_now() -> None:
    said = refused(*signed(index(expires=NOW - timedelta(seconds=1))))
    assert "expired at 2030-06-01T11:59:59+00:00" in said and "2030-06-01T12:00:00+00:00" in said


def test_an_older_index_is_refused_as_a_replay_naming_both_versions() -> None:
    said = refused(*signed(index(2)), seen=verify(*signed(index(5))).seen)
    assert "index version 2" in said and "5" in said and "replayed" in said


def test_the_same_index_version_with_other_content_is_refused() -> None:
    seen = verify(*signed(index(5))).seen
    said = refused(*signed(index(5, expires=NOW + timedelta(days=60))), seen=seen)
    assert "index version 5" in said and "other content" in said


def test_another_key_and_changed_bytes_are_refused() -> None:
    assert "does not verify" in refused(*signed(index(), key=OTHER_KEY))
    body, signature = signed(index())
    assert "does not verify" in refused(body.replace(b"1234", b"1235"), signature)
    assert "does not verify" in refused(body, b"not base64!\n")


def test_an_oversized_index_is_refused_before_its_signature_is_checked() -> None:
    body = index()[:-1] + b" " * release_index.SIZE_LIMIT + b"}"
    assert "larger than 1048576 bytes" in refused(*signed(body))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"index_version": "3"}, "index_version"),
        ({"index_version": 0}, "index_version"),
        ({"expires": "2030-07-01T00:00:00"}, "expires"),
        ({"releases": [{"version": "not a version"}]}, "releases.0.version"),
        ({"releases": [{"version": "2.0.0", "notes": "javascript:alert(1)"}]}, "releases.0.notes"),
        (
            {
                "releases": [
                    {"version": "2.0.0", "artifacts": {"../x": {"sha256": DIGEST, "size": 1}}}
                ]
            },
            "releases.0.artifacts.../x.[key]",
        ),
        (
            {"releases": [{"version": "2.0.0", "artifacts": {"a": {"sha256": "x", "size": 1}}}]},
            "releases.0.artifacts.a.sha256",
        ),
        ({"releases": [{"version": "1.0"}, {"version": "1.0.0"}]}, "twice"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_malformed_fields_are_refused_naming_the_field(
    change: dict[str, object], field: str
) -> None:
    data = {**orjson.loads(index()), **change}
    said = refused(*signed(orjson.dumps(data)))
    assert "is not a release index" in said and field in said


def test_signed_bytes_that_are_not_json_are_refused() -> None:
    assert "is not a release index" in refused(*signed(b"{not json"))


def test_an_index_of_another_product_is_refused() -> None:
    data = {**orjson.loads(index()), "product": "billing"}
    assert "'billing'" in refused(*signed(orjson.dumps(data)))


@settings(max_examples=120, deadline=None)
@given(st.data())
def test_any_change_to_the_signed_bytes_is_refused(data: st.DataObject) -> None:
    body, signature = signed(index())
    position = data.draw(st.integers(0, len(body) - 1))
    replacement = data.draw(st.binary(min_size=0, max_size=3))
    changed = body[:position] + replacement + body[position + 1 :]
    assume(changed != body)
    with pytest.raises(ReleaseError, match="does not verify"):
        verify(changed, signature)


def test_the_path_goes_through_the_required_stop_and_the_catalog_s_releases() -> None:
    parsed = release_index.parse_index(index())
    known = [Release(Version("1.0.0"), schema=1)]
    found = release_index.availability(parsed, known, Version("1.0.0"), NOW)
    assert found.describe() == "2.0.0 available, path 1.0.0 → 1.1.0 → 2.0.0"
    at_top = release_index.availability(parsed, known, Version("2.0.0"), NOW)
    assert at_top.describe().startswith("up to date")
    assert release_index.Availability.from_json(found.as_json()) == found


# --- publishing, fetching, the CLI ---------------------------------------------------------------


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A helpdesk site at 1.0.0 trusting ``keys/release.pub``; the vendor's release.key beside."""
    return helpdesk_site(tmp_path, "1.0.0")


def helpdesk_site(tmp_path: Path, version: str, grammar: str = "pep440") -> Path:
    """A helpdesk site at ``version``, its product writing ``grammar`` versions."""
    releases.generate_key(tmp_path / "keys")
    catalog = tmp_path / "catalog"
    (catalog / "schema").mkdir(parents=True)
    (catalog / "stairway.toml").write_text(
        f'[product]\nname = "helpdesk"\nversions = "{grammar}"\n\n'
        f'[[release]]\nversion = "{version}"\nschema = 1\n',
        "utf-8",
    )
    (catalog / "schema" / "0001_tickets.sql").write_text(
        "CREATE TABLE tickets (id INTEGER PRIMARY KEY);\n", "utf-8"
    )
    site = tmp_path / "site.toml"
    site.write_text(
        f'[site]\ndatabase = "sqlite:///{tmp_path / "helpdesk.db"}"\ncatalog = "catalog"\n'
        'release_key = "keys/release.pub"\nrelease_index = "published"\n',
        "utf-8",
    )
    code, _, err = stairway("init", "--version", version, "--site", str(site))
    assert code == 0, err
    return site


def publish(site: Path, *extra: str) -> tuple[int, str, str]:
    """The vendor's index of 1.0.0, 1.1.0 (LTS) and 2.0.0 (after 1.1.0, with its artifact)."""
    root = site.parent
    (root / "dist").mkdir(exist_ok=True)
    (root / "dist" / "helpdesk-2.0.0.tar.zst").write_bytes(b"the 2.0.0 artifact")
    listing = root / "releases.toml"
    listing.write_text(
        'product = "helpdesk"\n\n[[release]]\nversion = "1.0.0"\n\n'
        '[[release]]\nversion = "1.1.0"\nlts = true\n\n'
        '[[release]]\nversion = "2.0.0"\nrequires = "1.1.0"\n'
        'notes = "https://example.org/helpdesk/2.0.0"\n'
        'artifacts = ["dist/helpdesk-2.0.0.tar.zst"]\n',
        "utf-8",
    )
    key = root / "keys" / "release.key"
    out = root / "published"
    return stairway(
        "release", "publish-index", str(listing), "--key", str(key), "--out", str(out), *extra
    )


@pytest.fixture
def served(site: Path) -> Iterator[str]:
    """The site's ``published`` directory over HTTP on 127.0.0.1."""
    (site.parent / "published").mkdir(exist_ok=True)
    handler = functools.partial(Quiet, directory=str(site.parent / "published"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join()


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *_: object) -> None:
        pass


def test_published_index_is_checked_over_http_and_status_says_what_to_run(
    site: Path, served: str
) -> None:
    code, said, err = publish(site)
    assert code == 0, err
    assert "index version 1 of 3 release(s)" in said
    published = orjson.loads((site.parent / "published" / INDEX_FILE).read_bytes())
    assert published["releases"][2]["artifacts"]["helpdesk-2.0.0.tar.zst"] == {
        "sha256": releases.sha256_of(site.parent / "dist" / "helpdesk-2.0.0.tar.zst"),
        "size": len(b"the 2.0.0 artifact"),
    }
    code, said, err = stairway("release", "check", "--from", served, "--site", str(site))
    assert code == 0, err
    assert "2.0.0 available, path 1.0.0 → 1.1.0 → 2.0.0" in said
    assert "stairway upgrade --to 2.0.0" in said
    code, said, err = stairway("status", "--site", str(site))
    assert code == 0, err
    assert "2.0.0 is available" in said and "stairway release fetch 2.0.0" in said
    status = orjson.loads(stairway("status", "--json", "--site", str(site))[1])
    assert status["newer_release"]["version"] == "2.0.0"


def test_check_from_the_site_s_directory_with_json(site: Path) -> None:
    assert publish(site)[0] == 0
    code, said, err = stairway("release", "check", "--json", "--site", str(site))
    assert code == 0, err
    found = orjson.loads(said)
    assert found["newest"]["version"] == "2.0.0" and found["path"] == ["1.1.0", "2.0.0"]
    assert found["index_version"] == 1
    assert publish(site)[0] == 0, "the next index counts on by itself"
    assert (
        orjson.loads(stairway("release", "check", "--json", "--site", str(site))[1])[
            "index_version"
        ]
        == 2
    )


def test_publishing_an_index_version_not_above_the_last_is_refused(site: Path) -> None:
    assert publish(site, "--index-version", "4")[0] == 0
    code, _, err = publish(site, "--index-version", "4")
    assert code == 2 and "not above it" in err and "hint:" in err


def test_a_refused_index_exits_2_and_leaves_the_remembered_version_alone(
    site: Path, served: str
) -> None:
    published = site.parent / "published"
    assert publish(site, "--index-version", "5")[0] == 0
    assert stairway("release", "check", "--from", served, "--site", str(site))[0] == 0
    state = release_feed.state_file(load_site(site))
    remembered = state.read_bytes()
    older_body, older_signature = signed(index(2), key=vendor_key(site))
    cases = {
        "replayed": (older_body, older_signature),
        "does not verify": (published.joinpath(INDEX_FILE).read_bytes()[:-2] + b"}}", None),
        "expired": signed(
            index(9, expires=datetime.now(UTC) - timedelta(hours=1)), vendor_key(site)
        ),
    }
    for expected, (body, signature) in cases.items():
        published.joinpath(INDEX_FILE).write_bytes(body)
        if signature is not None:
            published.joinpath(SIGNATURE_FILE).write_bytes(signature)
        code, _, err = stairway("release", "check", "--from", served, "--site", str(site))
        assert code == 2, (expected, err)
        assert "error:" in err and "hint:" in err and expected in err
        assert state.read_bytes() == remembered, expected


def test_no_source_configured_is_refused_with_a_hint(tmp_path: Path, site: Path) -> None:
    text = site.read_text("utf-8").replace('release_index = "published"\n', "")
    site.write_text(text, "utf-8")
    code, _, err = stairway("release", "check", "--site", str(site))
    assert code == 2 and "release_index" in err and "hint:" in err


def vendor_key(site: Path) -> Ed25519PrivateKey:
    return releases.load_private_key(site.parent / "keys" / "release.key")


# --- upgrade --from-index: the release's catalog from its artifact in the index -----------------

TREE_CATALOG = {
    "stairway.toml": '[product]\nname = "helpdesk"\n\n[[release]]\nversion = "1.0.0"\nschema = 1\n'
    '\n[[release]]\nversion = "2.0.0"\nschema = 2\n',
    "schema/0001_tickets.sql": "CREATE TABLE tickets (id INTEGER PRIMARY KEY);\n",
    "schema/0002_queues.sql": "-- phase: expand\nCREATE TABLE queues (id INTEGER PRIMARY KEY);\n",
}


def publish_tree(site: Path, files: dict[str, str] = TREE_CATALOG) -> Path:
    """The 2.0.0 release tree (its catalog under ``upgrades/``) packed beside a signed index of
    1.0.0 and 2.0.0 that lists it; returns the published artifact."""
    root = site.parent
    tree = root / "tree-2.0.0"
    for name, text in files.items():
        (tree / "upgrades" / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / "upgrades" / name).write_text(text, "utf-8")
    artifact = root / "published" / "helpdesk-2.0.0.tar.zst"
    artifact.parent.mkdir(exist_ok=True)
    releases.pack_release(tree, artifact)
    listing = root / "releases.toml"
    listing.write_text(
        'product = "helpdesk"\n\n[[release]]\nversion = "1.0.0"\n\n'
        '[[release]]\nversion = "2.0.0"\nartifacts = ["published/helpdesk-2.0.0.tar.zst"]\n',
        "utf-8",
    )
    key = root / "keys" / "release.key"
    code, _, err = stairway(
        "release",
        "publish-index",
        str(listing),
        "--key",
        str(key),
        "--out",
        str(root / "published"),
    )
    assert code == 0, err
    text = site.read_text("utf-8").replace("[site]\n", '[site]\nbackup_dir = "backups"\n')
    site.write_text(text, "utf-8")
    return artifact


def site_release(site: Path, *catalog: str) -> str:
    code, out, err = stairway("status", "--json", "--site", str(site), *catalog)
    assert code == 0, err
    return str(orjson.loads(out)["release"])


def test_upgrade_takes_the_catalog_from_the_indexed_artifact_over_http(
    site: Path, served: str
) -> None:
    publish_tree(site)
    code, out, err = stairway(
        "upgrade", "--to", "2.0.0", "--from-index", served, "--site", str(site)
    )
    assert code == 0, err + out
    assert "upgraded 1.0.0 -> 2.0.0" in out and "catalog of 2.0.0 from the release index" in err
    unpacked = site.parent / ".stairway" / "indexed" / "helpdesk-2.0.0" / "upgrades"
    assert (unpacked / "schema" / "0002_queues.sql").is_file()
    assert f'set `catalog = "{unpacked}"`' in " ".join(out.split())
    assert site_release(site, "--catalog", str(unpacked)) == "2.0.0"


def test_a_bad_artifact_or_index_exits_2_and_changes_nothing(site: Path, served: str) -> None:
    artifact = publish_tree(site)
    good = artifact.read_bytes()
    published = site.parent / "published"
    other = site.parent / "other-key"
    releases.generate_key(other)
    cases = {
        "does not match its signed SHA-256": lambda: artifact.write_bytes(
            good[:-1] + bytes([good[-1] ^ 1])
        ),
        "bytes it is signed for": lambda: artifact.write_bytes(good + b"more"),
        "cannot": lambda: artifact.unlink(),
        "signature": lambda: published.joinpath(SIGNATURE_FILE).write_bytes(
            releases.sign_bytes(
                releases.load_private_key(other / "release.key"),
                published.joinpath(INDEX_FILE).read_bytes(),
            )
        ),
    }
    index_bytes = published.joinpath(SIGNATURE_FILE).read_bytes()
    for expected, spoil in cases.items():
        spoil()
        source = str(published) if expected == "cannot" else served  # a directory, too
        code, _, err = stairway(
            "upgrade", "--to", "2.0.0", "--from-index", source, "--site", str(site)
        )
        assert code == 2, (expected, err)
        assert expected in err and "error:" in err and "hint:" in err, (expected, err)
        assert "Traceback" not in err
        artifact.write_bytes(good)
        published.joinpath(SIGNATURE_FILE).write_bytes(index_bytes)
    assert not (site.parent / ".stairway" / "indexed").exists()
    assert site_release(site) == "1.0.0"
    code, _, err = stairway("upgrade", "--to", "3.0.0", "--from-index", served, "--site", str(site))
    assert code == 2 and "lists no release 3.0.0" in err and "1.0.0, 2.0.0" in err
    code, _, err = stairway("upgrade", "--from-index", served, "--site", str(site))
    assert code == 2 and "needs --to" in err and "hint:" in err


READ_ONLY_COMMANDS = (("verify",), ("plan", "--json"), ("rehearse",))


def test_verify_plan_and_rehearse_take_the_catalog_from_a_local_index(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the rehearsal without the estimate it is shown against: calibrating one takes seconds
    monkeypatch.setattr("stairway.report.documents.predicted", lambda *_: None)
    publish_tree(site)
    source = str(site.parent / "published")
    said: dict[str, str] = {}
    for command in READ_ONLY_COMMANDS:
        code, out, err = stairway(
            *command, "--to", "2.0.0", "--from-index", source, "--site", str(site)
        )
        assert code == 0, (command, err + out)
        assert "catalog of 2.0.0 from the release index" in err
        said[command[0]] = out
    assert "nothing blocks the upgrade to 2.0.0" in said["verify"]
    steps = orjson.loads(said["plan"])["steps"]
    assert [c["name"] for c in steps[0]["changes"]] == ["queues"]  # the indexed catalog's
    assert "rehearsed 1.0.0 -> 2.0.0" in " ".join(said["rehearse"].split())
    assert site_release(site) == "1.0.0"  # none of them moves the site


def test_a_tampered_index_is_refused_alike_by_every_command_taking_it(site: Path) -> None:
    artifact = publish_tree(site)
    published = site.parent / "published"
    index = published / INDEX_FILE
    good = index.read_bytes()
    index.write_bytes(good.replace(b'"2.0.0"', b'"2.0.1"', 1))  # signed bytes changed
    commands = (*READ_ONLY_COMMANDS, ("upgrade",))
    refusals = set()
    for command in commands:
        code, _, err = stairway(
            *command, "--to", "2.0.0", "--from-index", str(published), "--site", str(site)
        )
        assert code == 2, (command, err)
        assert "error:" in err and "hint:" in err and "Traceback" not in err
        refusals.add(err)
    assert len(refusals) == 1 and "signature" in refusals.pop()  # one message for all
    index.write_bytes(good)
    artifact.write_bytes(artifact.read_bytes() + b"more")
    for command in READ_ONLY_COMMANDS:
        code, _, err = stairway(
            *command, "--to", "2.0.0", "--from-index", str(published), "--site", str(site)
        )
        assert code == 2 and "bytes it is signed for" in err, (command, err)
        code, _, err = stairway(*command, "--from-index", str(published), "--site", str(site))
        assert code == 2 and "needs --to, and goes with no --catalog" in err, (command, err)
        assert f"run `stairway {command[0]} --to V --from-index URL|DIR`" in err
    assert not (site.parent / ".stairway" / "indexed").exists()
    assert site_release(site) == "1.0.0"


# --- a product writing CalVer -------------------------------------------------------------------

CALVER = [
    {"version": "2024.09"},
    {"version": "2024.09.3", "lts": True},
    {"version": "2024.10", "requires": "2024.09.3"},
]


def calver_index(releases: list[dict[str, object]] = CALVER, **extra: object) -> bytes:
    data = {"product": "helpdesk", "index_version": 1, "expires": NOW + timedelta(days=1)}
    fields = {**data, "releases": releases, **extra}
    return ReleaseIndex.model_validate(fields, strict=False, context={"grammar": "calver"}).encode()


def test_a_calver_index_is_read_in_the_catalogs_grammar_and_orders_as_calver() -> None:
    body, signature = signed(calver_index())
    verified = verify_index(body, signature, KEY.public_key(), NOW, None, "helpdesk", "calver")
    current = Version("2024.09", "calver")
    found = release_index.availability(verified.index, [Release(current, 1)], current, NOW)
    assert found.describe() == "2024.10 available, path 2024.09 → 2024.09.3 → 2024.10"
    assert release_index.Availability.from_json(found.as_json(), "calver") == found


@pytest.mark.parametrize(
    ("declared", "catalog", "said"),
    [
        ("semver", "calver", "declares semver versions, but this site's catalog writes calver"),
        ("pep440", "maven", "declares pep440 versions, but this site's catalog writes maven"),
    ],
)
def test_an_index_declaring_another_grammar_is_refused_naming_both(
    declared: GrammarName, catalog: GrammarName, said: str
) -> None:
    entries = [{"version": "2024.10.1"}]  # a version of every grammar: only the names differ
    body = ReleaseIndex.model_validate(
        {"product": "helpdesk", "index_version": 1, "expires": NOW + timedelta(days=1)}
        | {"releases": entries, "versions": declared},
        strict=False,
    ).encode()
    body, signature = signed(body)
    with pytest.raises(ReleaseError) as caught:
        verify_index(body, signature, KEY.public_key(), NOW, None, "helpdesk", catalog)
    assert said in caught.value.message and caught.value.hint
    same = verify_index(body, signature, KEY.public_key(), NOW, None, "helpdesk", declared)
    assert same.index.grammar == declared


@given(month=st.integers(1, 30), micro=st.integers(0, 9))
def test_an_index_version_not_of_the_catalogs_grammar_names_its_field(
    month: int, micro: int
) -> None:
    assume(month > 12)  # no CalVer month: the index is not of a CalVer product
    entries = [{"version": "2024.09"}, {"version": f"2024.{month}.{micro}"}]
    body = orjson.dumps(
        {"product": "helpdesk", "index_version": 1, "expires": (NOW + timedelta(days=1))}
        | {"releases": entries, "format": 1}
    )
    with pytest.raises(ReleaseError) as caught:
        release_index.parse_index(body, "calver")
    assert "releases.1.version" in caught.value.message
    assert release_index.parse_index(body).releases[1].at == Version(f"2024.{month}.{micro}")


def test_a_calver_index_is_checked_and_shown_by_status(tmp_path: Path) -> None:
    site = helpdesk_site(tmp_path, "2024.09", "calver")
    root = site.parent
    listing = root / "releases.toml"
    listed = "".join(
        f'\n[[release]]\nversion = "{v}"\n' for v in ("2024.09", "2024.09.3", "2024.10")
    )
    listing.write_text(f'product = "helpdesk"\nversions = "calver"\n{listed}', "utf-8")
    key, out = root / "keys" / "release.key", root / "published"
    code, _, err = stairway(
        "release", "publish-index", str(listing), "--key", str(key), "--out", str(out)
    )
    assert code == 0, err
    code, said, err = stairway("release", "check", "--site", str(site))
    assert code == 0, err
    assert "2024.10 available, path 2024.09 → 2024.09.3 → 2024.10" in said
    code, said, err = stairway("status", "--site", str(site))
    assert code == 0, err
    assert "2024.10 is available" in said and "stairway upgrade --to 2024.10" in said
    status = orjson.loads(stairway("status", "--json", "--site", str(site))[1])
    assert status["newer_release"]["version"] == "2024.10"
    assert status["next"]["commands"][-1] == "stairway upgrade --to 2024.10"
