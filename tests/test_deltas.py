"""Configuration deltas on SQLite and PostgreSQL: initial objects, modify, obsolete, reported
not forced, a second run a no-op, and every malformed delta refused with its line."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest
from sqlalchemy import text

from cli_runner import stairway
from stairway import context, operations
from stairway.catalog import load_catalog
from stairway.errors import CatalogError, DeltaError
from stairway.objects.delta import Verdict
from stairway.operations import MigrateRequest
from stairway.schema import migrator

CATALOGS = Path(__file__).parent / "catalogs"


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    target = tmp_path / "catalog"
    shutil.copytree(CATALOGS / "people", target, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(CATALOGS / "people_deltas" / "deltas", target / "deltas")
    return target


@pytest.fixture
def site(tmp_path: Path, database_url: str, catalog: Path) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(f'[site]\ndatabase = "{database_url}"\ncatalog = "{catalog}"\n', "utf-8")
    return path


def objects(site: Path) -> dict[str, tuple[str, dict[str, object], str | None]]:
    ctx = context.open_context(site, None)
    with ctx.engine.connect() as conn:
        rows = conn.execute(text("SELECT oid, type, data, written_by FROM objects"))
        return {r[0]: (r[1], orjson.loads(r[2]), r[3]) for r in rows}


def edit(site: Path, oid: str, document: dict[str, object]) -> None:
    ctx = context.open_context(site, None)
    with ctx.engine.begin() as conn:
        conn.execute(
            text("UPDATE objects SET data = :d WHERE oid = :o"),
            {"d": orjson.dumps(document).decode(), "o": oid},
        )


def upgrade_schema(site: Path, *versions: str) -> None:
    for version in versions:
        operations.migrate(context.open_context(site, None), MigrateRequest(to=version))


def test_init_brings_the_initial_objects_of_every_release_up_to_it(site: Path) -> None:
    operations.init(context.open_context(site, None), "3.0.0")
    found = objects(site)
    assert set(found) == {
        "role-admin",
        "role-auditor",
        "role-legacy-sync",
        "role-mfa-admin",
        "policy-password",
    }
    assert found["policy-password"][1] == {
        "name": "Password policy",
        "minLength": 12,
        "history": 3,
        "expiry": {"days": 90},
    }
    assert found["role-auditor"][1]["privileges"] == ["read", "export"]
    assert found["role-legacy-sync"][1]["lifecycleState"] == "obsolete", "marked, never deleted"
    assert found["role-mfa-admin"] == (
        "Role",
        {"name": "MFA administrator", "privileges": ["mfa"]},
        "3.0.0",
    )

    again = operations.apply_deltas(context.open_context(site, None))
    assert {r.verdict for r in again.results} == {None}, "a second run is a no-op"
    assert objects(site) == found


def test_init_at_a_late_release_stores_an_early_deltas_object_migrated(
    site: Path, catalog: Path
) -> None:
    """A 1.0.0 delta's object, added on a site created at 3.0.0, is stored in 3.0.0's shape
    and stamped 3.0.0: not in its 1.0.0 shape stamped as if 3.0.0 had written it, which no
    object migration would ever look at again."""
    with (catalog / "deltas" / "1.0.0" / "initial.toml").open("a", encoding="utf-8") as out:
        out.write(
            '\n[[delta]]\nid = "user-setup"\ndescription = "Adds the setup user."\nop = "add"\n'
            'type = "User"\ntarget = "user-setup"\n'
            'object = { fullName = "Setup", legacyFlags = [1] }\n'
        )
    operations.init(context.open_context(site, None), "3.0.0")
    assert objects(site)["user-setup"] == ("User", {"displayName": "Setup"}, "3.0.0")


def test_an_upgrade_applies_what_it_can_and_reports_what_an_operator_changed(site: Path) -> None:
    operations.init(context.open_context(site, None), "1.0.0")
    policy = objects(site)["policy-password"][1]
    edit(site, "policy-password", {**policy, "minLength": 10})
    upgrade_schema(site, "2.0.0", "3.0.0")

    code, out, err = stairway("deltas", "apply", "--site", str(site), "--json")
    assert code == 3
    assert "policy-password-2.0" in err and "minLength is 10, the release shipped 8" in err
    outcomes = {d["id"]: d["outcome"] for d in orjson.loads(out)["deltas"]}
    assert outcomes == {
        "role-admin": "settled",
        "role-auditor": "settled",
        "role-legacy-sync": "settled",
        "policy-password": "settled",
        "policy-password-2.0": "report",
        "auditor-export": "apply",
        "legacy-sync-obsolete": "apply",
        "role-mfa-admin": "apply",
    }
    found = objects(site)
    assert found["policy-password"][1] == {**policy, "minLength": 10}, "all or nothing"
    assert found["role-auditor"][1]["privileges"] == ["read", "export"]

    code, _, err = stairway("deltas", "apply", "--site", str(site))
    assert code == 3 and "policy-password-2.0" in err, "a reported delta is judged again"
    code, out, _ = stairway(
        "deltas", "skip", "policy-password-2.0", "--reason", "ours is 10", "--site", str(site)
    )
    assert code == 0 and "skipped" in out
    code, _, err = stairway("deltas", "apply", "--site", str(site))
    assert code == 0, err
    assert objects(site) == found


def test_a_change_made_by_hand_before_the_delta_counts_as_done(site: Path) -> None:
    operations.init(context.open_context(site, None), "1.0.0")
    policy = objects(site)["policy-password"][1]
    edit(site, "policy-password", {**policy, "minLength": 12, "expiry": {"days": 90}})
    upgrade_schema(site, "2.0.0")
    report = operations.apply_deltas(context.open_context(site, None))
    verdicts = {r.delta.id: r.verdict for r in report.results}
    assert verdicts["policy-password-2.0"] == Verdict.DONE


def test_a_missing_target_is_reported(site: Path) -> None:
    operations.init(context.open_context(site, None), "2.0.0")
    ctx = context.open_context(site, None)
    with ctx.engine.begin() as conn:
        conn.execute(text("DELETE FROM objects WHERE oid = 'role-legacy-sync'"))
    upgrade_schema(site, "3.0.0")
    report = operations.apply_deltas(context.open_context(site, None))
    [missing] = report.reported
    assert missing.delta.id == "legacy-sync-obsolete"
    assert missing.reason == "no Role role-legacy-sync to change"


def test_dry_run_judges_without_writing_or_recording(site: Path) -> None:
    operations.init(context.open_context(site, None), "1.0.0")
    upgrade_schema(site, "2.0.0")
    before = objects(site)
    report = operations.apply_deltas(context.open_context(site, None), dry_run=True)
    assert {r.delta.id for r in report.having(Verdict.APPLY)} == {
        "policy-password-2.0",
        "auditor-export",
    }
    assert objects(site) == before
    real = operations.apply_deltas(context.open_context(site, None))
    assert len(real.having(Verdict.APPLY)) == 2, "the dry run recorded nothing"


def test_deltas_wait_for_the_schema(site: Path) -> None:
    ctx = context.open_context(site, None)
    operations.init(ctx, "1.0.0")
    migrator.set_site_release(ctx.engine, ctx.catalog, "3.0.0")
    with pytest.raises(DeltaError, match="deltas come after the schema") as caught:
        operations.apply_deltas(ctx)
    assert "stairway migrate" in caught.value.hint


def test_skipping_an_unknown_delta_names_the_known_ones(site: Path) -> None:
    operations.init(context.open_context(site, None), "1.0.0")
    code, _, err = stairway("deltas", "skip", "nope", "--reason", "x", "--site", str(site))
    assert code == 2 and "no delta 'nope'" in err and "role-admin" in err


# --- malformed deltas -----------------------------------------------------------------------------

GOOD = 'id = "ok"\ndescription = "fine"\nop = "obsolete"\ntype = "Role"\ntarget = "r"\n'
BAD = [
    (
        'id = "x"\ndescription = "d"\nop = "add"\ntype = "Role"\ntarget = "r"',
        "`object` is required",
    ),
    (
        'id = "x"\ndescription = "d"\nop = "add"\ntype = "Role"\nwhere = {a = 1}\nobject = {}',
        "add needs `target`",
    ),
    ('id = "x"\ndescription = "d"\nop = "modify"\ntype = "Role"\ntarget = "r"', "[[delta.set]]"),
    ('id = "x"\ndescription = "d"\nop = "obsolete"\ntype = "Role"', "either `target`"),
    (
        'id = "x"\ndescription = "d"\nop = "obsolete"\ntype = "Role"\ntarget = "r"\n'
        "where = {a = 1}",
        "either `target`",
    ),
    ('id = "x"\ndescription = ""\nop = "obsolete"\ntype = "Role"\ntarget = "r"', "description"),
    ('id = "x"\ndescription = "d"\nop = "delete"\ntype = "Role"\ntarget = "r"', "op"),
    ('id = "x y"\ndescription = "d"\nop = "obsolete"\ntype = "Role"\ntarget = "r"', "id"),
    (
        'id = "x"\ndescription = "d"\nop = "modify"\ntype = "Role"\ntarget = "r"\n'
        '[[delta.set]]\npath = "a"\nold = 1\nnew = 1',
        "nothing to change",
    ),
    (
        'id = "x"\ndescription = "d"\nop = "obsolete"\ntype = "Role"\ntarget = "r"\nforce = true',
        "unknown key 'delta[2].force'",
    ),
]


@pytest.mark.parametrize(("entry", "message"), BAD)
def test_malformed_delta_is_refused_with_its_line(catalog: Path, entry: str, message: str) -> None:
    path = catalog / "deltas" / "3.0.0" / "zz.toml"
    path.write_text(f"[[delta]]\n{GOOD}\n[[delta]]\n{entry}\n", "utf-8")
    with pytest.raises(CatalogError) as caught:
        load_catalog(catalog)
    assert message in str(caught.value)
    assert caught.value.path == str(path) and (caught.value.line or 0) >= 8


def test_a_delta_id_used_twice_is_refused(catalog: Path) -> None:
    path = catalog / "deltas" / "3.0.0" / "zz.toml"
    path.write_text(f"[[delta]]\n{GOOD.replace(chr(34) + 'ok', chr(34) + 'role-admin')}", "utf-8")
    with pytest.raises(CatalogError, match="delta id 'role-admin' is used twice"):
        load_catalog(catalog)


@pytest.mark.parametrize(
    ("name", "message"), [("two", "not a release version"), ("2.5.0", "no release of this catalog")]
)
def test_a_delta_directory_must_name_a_release(catalog: Path, name: str, message: str) -> None:
    (catalog / "deltas" / name).mkdir()
    (catalog / "deltas" / name / "a.toml").write_text(f"[[delta]]\n{GOOD}", "utf-8")
    with pytest.raises(CatalogError, match=message):
        load_catalog(catalog)
