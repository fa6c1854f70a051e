"""The audit log anchored outside the database: a log cut short, recomputed over edited entries,
emptied or dropped, and a witness removed or edited, are each named by `audit verify` (exit 2);
a restore re-bases the chain; an export's forged audit chunk is refused on import."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest
import zstandard
from sqlalchemy import text

from cli_runner import stairway
from stairway import audit, context, operations
from stairway.database import dispose_all, engine_for
from stairway.transfer.format import digest, line, records
from test_audit_carry import LATER, logged, quiet_site, write  # noqa: F401 - fixture
from test_import import make_site

CATALOG = Path(__file__).parent / "catalogs" / "people"


def site_at(root: Path, url: str) -> Path:
    site = root / "site.toml"
    site.write_text(f'[site]\ndatabase = "{url}"\ncatalog = "{CATALOG}"\n', "utf-8")
    return site


def append(url: str, count: int, start: int = 0) -> None:
    with engine_for(url).begin() as conn:
        for n in range(start, start + count):
            audit.append(conn, "secret.set", {"name": f"s{n}"}, actor="ops")


def verify(site: Path) -> tuple[int, str]:
    code, out, err = stairway("audit", "verify", "--site", str(site))
    dispose_all()
    return code, out + err


def witness(site: Path) -> Path:
    return site.parent / ".stairway" / "site.audit.witness"


@pytest.fixture
def anchored(tmp_path: Path, database_url: str) -> Path:
    """A site whose log of 8 entries the witness signed twice (at 5 and at 8)."""
    site = site_at(tmp_path, database_url)
    append(database_url, 5)
    code, said = verify(site)
    assert code == 0 and "not anchored yet" in said, said
    append(database_url, 3, 5)
    assert verify(site)[0] == 0
    return site


def sql(site: Path, *statements: str) -> None:
    with context.open_context(site, None).engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    dispose_all()


def recompute(url: str, edit: dict[int, dict[str, str]]) -> None:
    """What someone with write access to the database can do: edit entries, then give every
    entry the hash the chain wants, so the chain alone is whole again."""
    engine = engine_for(url)
    with engine.begin() as conn:
        rows = conn.execute(text("SELECT * FROM stairway_audit ORDER BY id")).mappings().all()
        previous = audit.GENESIS
        for row in rows:
            fields = {**row, **edit.get(row["id"], {})}
            digest_ = audit._hash(  # the attacker's copy of the formula
                previous, row["id"], fields["at"], fields["actor"], fields["action"], fields["data"]
            )
            conn.execute(
                text(
                    "UPDATE stairway_audit SET at = :at, actor = :actor, action = :action, "
                    "data = :data, previous = :previous, hash = :hash WHERE id = :id"
                ),
                {**fields, "previous": previous, "hash": digest_},
            )
            previous = digest_
    dispose_all()


def test_an_untouched_anchored_log_is_whole_and_says_what_was_signed(anchored: Path) -> None:
    code, said = verify(anchored)
    assert code == 0 and "8 entries" in said and "signed it up to entry 8" in said, said
    code, out, _ = stairway("audit", "verify", "--site", str(anchored), "--json")
    found = orjson.loads(out)
    assert code == 0 and found["whole"] and found["anchored"]
    assert found["checkpoint"]["seq"] == 8 and found["key"]
    lines = witness(anchored).read_bytes().splitlines()
    assert [orjson.loads(x)["reason"] for x in lines] == ["anchored", "checkpoint"]
    key = anchored.parent / ".stairway" / "site.audit.key"
    assert key.stat().st_mode & 0o077 == 0


def test_the_last_entries_deleted_are_named(anchored: Path) -> None:
    sql(anchored, "DELETE FROM stairway_audit WHERE id > 6")
    before = witness(anchored).read_bytes()
    code, said = verify(anchored)
    assert code == 2 and "entries 7..8 are missing: the witness saw the log reach 8" in said
    assert witness(anchored).read_bytes() == before, "nothing is signed over a cut log"


def test_a_chain_recomputed_over_edited_entries_is_named(anchored: Path) -> None:
    url = context.open_context(anchored, None).site.database
    recompute(url, {3: {"actor": "root", "action": "secrets.delete", "at": "2020-01-01"}})
    with engine_for(url).connect() as conn:
        assert audit.verify(conn) == [], "the chain alone is whole again"
    dispose_all()
    code, said = verify(anchored)
    assert code == 2 and "entry 8's hash differs from the one the witness signed" in said, said


def test_every_row_deleted_is_named(anchored: Path) -> None:
    sql(anchored, "DELETE FROM stairway_audit")
    code, said = verify(anchored)
    assert code == 2 and "every entry is gone: entries 1..8 are missing" in said, said


def test_a_dropped_table_is_named(anchored: Path) -> None:
    sql(anchored, "DROP TABLE stairway_audit")
    code, said = verify(anchored)
    assert code == 2 and "the audit table is gone: the witness saw the log reach 8" in said


def test_a_deleted_witness_is_named(anchored: Path) -> None:
    witness(anchored).unlink()
    code, said = verify(anchored)
    assert code == 2 and "is missing or empty, yet the audit key exists" in said, said
    assert not witness(anchored).exists(), "the site is not anchored afresh behind its back"


def test_an_altered_witness_line_is_named(anchored: Path) -> None:
    lines = witness(anchored).read_bytes().splitlines()
    point = orjson.loads(lines[-1])
    lines[-1] = orjson.dumps(point | {"seq": 6})
    witness(anchored).write_bytes(b"\n".join(lines) + b"\n")
    code, said = verify(anchored)
    assert code == 2 and "witness line 2" in said and "bad signature" in said, said


def test_a_restore_rebases_the_chain_and_verify_is_whole(quiet_site: Path) -> None:  # noqa: F811
    write(quiet_site, [("secret.set", {"name": "db"}, "ops")])
    taken = operations.backup(context.open_context(quiet_site, None))
    write(quiet_site, LATER)
    assert verify(quiet_site)[0] == 0  # anchored at entry 4
    code, _, err = stairway("restore", taken.id, "--yes", "--site", str(quiet_site))
    assert code == 0, err
    code, said = verify(quiet_site)
    assert code == 0 and "whole" in said and "restore of backup" in said, said
    reasons = [orjson.loads(x)["reason"] for x in witness(quiet_site).read_bytes().splitlines()]
    assert reasons == ["anchored", "restore"]


def test_audit_show_prints_markup_and_control_characters_literally(
    tmp_path: Path, sqlite_database: str
) -> None:
    site = site_at(tmp_path, sqlite_database)
    with engine_for(sqlite_database).begin() as conn:
        audit.append(conn, "note\x1b[31m", {"said": "[red]x[/red]"}, actor="[bold]eve\r")
    code, out, _ = stairway("audit", "show", "--site", str(site))
    assert code == 0 and "\x1b" not in out and "\r" not in out
    assert "[red]x[/red]" in out and "note\\x1b[31m" in out and "[bold]eve\\x0d" in out


# --- exports --------------------------------------------------------------------------------------


def reseal(path: Path, forge: dict[int, dict[str, str]], strip: bool = False) -> None:
    """The export rewritten as a forger would: audit entries edited with their chain, the audit
    chunk's SHA-256 and the trailer recomputed (``strip``: the header's checkpoint removed)."""
    found = [orjson.loads(raw) for _, raw in records(path)]
    header, *body, trailer = found
    if strip:
        header.pop("audit_checkpoint")
    previous, entries = audit.GENESIS, []
    for record in body:
        if record["kind"] != "audit":
            continue
        fields = record | forge.get(record["id"], {})
        fields["previous"] = previous
        fields["hash"] = audit._hash(  # the forger's copy of the formula
            previous, fields["id"], fields["at"], fields["actor"], fields["action"], fields["data"]
        )
        previous = fields["hash"]
        entries.append(fields)
    objects = [r for r in body if r["kind"] not in ("audit",)]
    chunk = b"".join(line(e) for e in entries)
    sha = hashlib.sha256(chunk).hexdigest()
    seal = objects[-1] | {"sha256": sha}
    manifest = [*trailer["manifest"][:-1], {"count": len(entries), "sha256": sha}]
    trailer |= {"manifest": manifest, "digest": digest([m["sha256"] for m in manifest])}
    frames = [line(header), *[line(r) for r in objects[:-1]], chunk + line(seal), line(trailer)]
    path.write_bytes(b"".join(zstandard.ZstdCompressor().compress(f) for f in frames))


@pytest.fixture
def exported(tmp_path: Path, sqlite_database: str) -> tuple[Path, Path, Path]:
    """An export of a site with audit entries, that site's audit public key, and a target."""
    source = make_site(tmp_path / "s", sqlite_database, "1.0.0")
    append(sqlite_database, 3)
    out = tmp_path / "e.zst"
    assert stairway("export", "--out", str(out), "--site", str(source))[0] == 0
    key = tmp_path / "audit.pub"
    assert stairway("audit", "key", "--out", str(key), "--site", str(source))[0] == 0
    target = make_site(tmp_path / "t", f"sqlite:///{tmp_path / 't.db'}", "1.0.0")
    dispose_all()
    return out, key, target


def imported(target: Path) -> list[audit.Entry]:
    found = logged(target)
    return [e for e in found if "source" in e.data]


def test_an_export_signed_by_the_trusted_key_imports_its_entries(
    exported: tuple[Path, Path, Path],
) -> None:
    out, key, target = exported
    assert stairway("export", "verify", str(out))[0] == 0
    code, _, err = stairway("import", str(out), "--trust", str(key), "--site", str(target))
    assert code == 0, err
    found = imported(target)
    assert len(found) == 3 and not any("unverified" in e.data for e in found)


def test_a_forged_audit_chunk_is_refused_and_nothing_is_written(
    exported: tuple[Path, Path, Path],
) -> None:
    out, key, target = exported
    forged = {"actor": "root", "action": "secrets.delete", "at": "2020-01-01"}
    reseal(out, {2: forged})
    code, _, err = stairway("import", str(out), "--trust", str(key), "--site", str(target))
    assert code == 2 and "do not end at entry 3 as signed" in err, err
    assert logged(target) == [], "nothing was written"
    code, _, err = stairway("import", str(out), "--site", str(target))
    assert code == 2 and "--trust" in err and "--untrusted-audit" in err, err
    code, _, err = stairway("import", str(out), "--untrusted-audit", "--site", str(target))
    assert code == 0, err
    found = imported(target)
    assert [e.actor for e in found] == ["ops", "root", "ops"]
    assert all(e.data["unverified"] is True for e in found)
    code, shown, _ = stairway("audit", "show", "--site", str(target))
    assert shown.count("unverified import") == 3


def test_an_unsigned_export_or_another_key_is_refused(
    exported: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    out, key, target = exported
    other = make_site(tmp_path / "o", f"sqlite:///{tmp_path / 'o.db'}", "1.0.0")
    append(f"sqlite:///{tmp_path / 'o.db'}", 1)
    stranger = tmp_path / "other.pub"
    assert stairway("audit", "key", "--out", str(stranger), "--site", str(other))[0] == 0
    code, _, err = stairway("import", str(out), "--trust", str(stranger), "--site", str(target))
    assert code == 2 and "not the trusted" in err, err
    reseal(out, {}, strip=True)
    code, _, err = stairway("import", str(out), "--trust", str(key), "--site", str(target))
    assert code == 2 and "no signed audit checkpoint" in err, err
    assert logged(target) == []
