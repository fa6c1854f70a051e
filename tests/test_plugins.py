"""Plug-ins with versions on SQLite and PostgreSQL: an upgrade snapshots a moved plug-in's
directory and repoints the objects naming it; ``plugin rollback`` puts one plug-in back on its
own, refuses a hostile snapshot with nothing changed, and a kill in the middle leaves it
wholly at one version."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

from cli_runner import stairway
from stairway import audit, context, operations, plugin_snapshots, rolling
from stairway.catalog.loader import load_catalog
from stairway.catalog.manifest import PluginReferenceModel
from stairway.database import dispose_all
from stairway.errors import CatalogError, PluginError
from stairway.estimate.rates import OBJECTS_PER_S
from stairway.fleet import store as fleet_store
from stairway.fleet.tables import ensure_tables
from stairway.instances import Instance
from stairway.journal import JournalState
from stairway.plugin_moves import PluginMove, catching_up, named_version, repoint
from stairway.steps import StepKind
from stairway.versions import Version
from test_upgrade import build_site

PLUGINS = """
[[plugin]]
name = "ldap"
kind = "connector"
directory = "connectors/ldap"
versions = { "1.0.0" = "1.2.0", "2.0.0" = "1.2.0", "3.0.0" = "1.3.0" }
[[plugin.reference]]
type = "Connector"
name = "connector.type"
version = "connector.version"

[[plugin]]
name = "csv"
kind = "connector"
directory = "connectors/csv"
versions = { "1.0.0" = "2.0.0", "3.0.0" = "2.1.0" }
[[plugin.reference]]
type = "Connector"
name = "connector.type"
version = "connector.version"
"""
CONNECTORS = [("c-1", "ldap", "1.2.0"), ("c-2", "ldap", "1.2.0"), ("c-3", "ldap", "1.2.0")]
CONNECTORS += [("c-4", "ldap", "1.1.0"), ("c-5", "csv", "2.0.0"), ("c-6", "csv", "2.0.0")]


def plugin_site(root: Path, database_url: str, version: str = "1.0.0") -> Path:
    """The people site with two versioned connectors, their directories and their objects."""
    site = build_site(root, database_url, service=False)
    catalog = root / "catalog" / "stairway.toml"
    catalog.write_text(catalog.read_text("utf-8") + PLUGINS, "utf-8")
    ldap = root / "data" / "connectors" / "ldap"
    (ldap / "lib").mkdir(parents=True)
    (ldap / "ldap.jar").write_bytes(b"ldap 1.2.0" * 300)
    (ldap / "lib" / "dep.jar").write_bytes(b"dependency")
    (ldap / "current.jar").symlink_to("ldap.jar")
    (root / "data" / "connectors" / "csv").mkdir()
    (root / "data" / "connectors" / "csv" / "csv.jar").write_bytes(b"csv 2.0.0")
    ctx = context.open_context(site, None)
    with ctx.engine.begin() as conn:
        for oid, name, at in CONNECTORS:
            body = {"connector": {"type": name, "version": at}, "host": "ldap.example.org"}
            conn.execute(
                text("INSERT INTO objects VALUES (:o, 'Connector', :d, :v)"),
                {"o": oid, "d": orjson.dumps(body).decode(), "v": version},
            )
    dispose_all()
    return site


def tree(directory: Path) -> dict[str, str]:
    """Every entry below ``directory``: a file's digest, a link's target."""
    found = {}
    for path in sorted(directory.rglob("*")):
        name = path.relative_to(directory).as_posix()
        if path.is_symlink():
            found[name] = "-> " + os.readlink(path)
        elif path.is_file():
            found[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def named(site: Path) -> dict[str, str]:
    """Each connector object's ``type version``."""
    ctx = context.open_context(site, None)
    with ctx.engine.connect() as conn:
        rows = conn.execute(text("SELECT oid, data FROM objects WHERE type = 'Connector'"))
        found = {str(o): orjson.loads(d)["connector"] for o, d in rows}
    dispose_all()
    return {oid: f"{c['type']} {c['version']}" for oid, c in found.items()}


def release_of(site: Path) -> str:
    ctx = context.open_context(site, None)
    found = str(context.current_version(ctx))
    dispose_all()
    return found


@pytest.mark.heavy  # a whole upgrade through a required stop: about 30 s on PostgreSQL
def test_upgrade_moves_objects_and_one_plugin_rolls_back_alone(
    tmp_path: Path, database_url: str
) -> None:
    site = plugin_site(tmp_path, database_url)
    connectors = tmp_path / "data" / "connectors"
    old_ldap = tree(connectors / "ldap")
    code, out, err = stairway("verify", "--to", "3.0.0", "--site", str(site))
    assert "3 connector objects move ldap 1.2.0 -> 1.3.0" in out, out + err
    assert "1 connector object moves ldap 1.1.0 -> 1.3.0" in out, out + err
    code, out, err = stairway("upgrade", "--to", "3.0.0", "--site", str(site))
    assert code == 0, out + err
    after = named(site)
    assert after == {
        **{o: "ldap 1.3.0" for o in ("c-1", "c-2", "c-3", "c-4")},
        **{"c-5": "csv 2.1.0", "c-6": "csv 2.1.0"},
    }
    kept = plugin_snapshots.snapshots(tmp_path / "backups", "ldap")
    assert [s.version for s in kept] == ["1.2.0"]
    assert kept[0].links == {"current.jar": "ldap.jar"}
    # the new release brings its connectors
    (connectors / "ldap" / "ldap.jar").write_bytes(b"ldap 1.3.0")
    (connectors / "ldap" / "new.jar").write_bytes(b"only in 1.3.0")
    (connectors / "csv" / "csv.jar").write_bytes(b"csv 2.1.0")
    new_csv = tree(connectors / "csv")

    code, out, err = stairway("plugin", "rollback", "ldap", "--site", str(site), "--json")
    assert code == 0, out + err
    assert json.loads(out)["objects"] == 4
    assert tree(connectors / "ldap") == old_ldap
    assert tree(connectors / "csv") == new_csv
    assert named(site) == after | {o: "ldap 1.2.0" for o in ("c-1", "c-2", "c-3", "c-4")}
    assert release_of(site) == "3.0.0"
    assert sorted(p.name for p in connectors.iterdir()) == ["csv", "ldap"]  # nothing left over
    ctx = context.open_context(site, None)
    logged = [e for e in audit.read(ctx.engine) if e.action == "plugin.rollback"]
    dispose_all()
    assert [(e.data["plugin"], e.data["objects"]) for e in logged] == [("ldap", 4)]
    code, out, _ = stairway("plugin", "list", "--site", str(site), "--json")
    listed = {p["name"]: p for p in json.loads(out)["plugins"]}
    assert listed["ldap"]["installed"] == "1.3.0"
    assert listed["ldap"]["objects"] == {"1.2.0": 4}
    assert listed["csv"]["objects"] == {"2.1.0": 2}


@pytest.fixture
def at_new(tmp_path: Path) -> Path:
    """A SQLite site at 3.0.0 whose ldap objects and directory are at 1.3.0, with a snapshot
    of ldap 1.2.0 kept."""
    site = plugin_site(tmp_path, f"sqlite:///{tmp_path / 'app.db'}", "3.0.0")
    ldap = tmp_path / "data" / "connectors" / "ldap"
    plugin_snapshots.take(tmp_path / "backups", "ldap", "1.2.0", ldap)
    (ldap / "ldap.jar").write_bytes(b"ldap 1.3.0")
    ctx = context.open_context(site, None)
    for stop in ("2.0.0", "3.0.0"):
        operations.migrate(ctx, operations.MigrateRequest(to=stop))
    with ctx.engine.begin() as conn:
        conn.execute(text("UPDATE objects SET data = replace(data, '1.2.0', '1.3.0')"))
    dispose_all()
    return site


def state(site: Path) -> tuple[dict[str, str], dict[str, str], str]:
    return tree(site.parent / "data"), named(site), release_of(site)


def _snapshot(site: Path) -> Path:
    return plugin_snapshots.snapshots(site.parent / "backups", "ldap")[0].path


def _tamper(site: Path) -> None:
    (_snapshot(site) / "files" / "ldap.jar").write_bytes(b"evil")


def _traverse(site: Path) -> None:
    manifest = _snapshot(site) / "manifest.json"
    data = json.loads(manifest.read_text("utf-8"))
    data["files"]["../../../escape.jar"] = data["files"].pop("lib/dep.jar")
    manifest.write_text(json.dumps(data), "utf-8")


def _link_out(site: Path) -> None:
    manifest = _snapshot(site) / "manifest.json"
    data = json.loads(manifest.read_text("utf-8"))
    data["links"]["current.jar"] = "../../../../etc/passwd"
    manifest.write_text(json.dumps(data), "utf-8")


def _swapped_for_link(site: Path) -> None:
    target = _snapshot(site) / "files" / "lib" / "dep.jar"
    target.unlink()
    target.symlink_to("/etc/hostname")


@pytest.mark.parametrize(
    ("args", "spoil", "said"),
    [
        (["nosuch"], None, "declares no plug-in 'nosuch'"),
        (["ldap", "--to", "0.9.0"], None, "no snapshot of plug-in ldap at version 0.9.0"),
        (["csv"], None, "no snapshot of plug-in csv"),
        (["ldap"], _tamper, "does not match its digest"),
        (["ldap"], _traverse, "outside the plug-in directory"),
        (["ldap"], _link_out, "points out of the plug-in directory"),
        (["ldap"], _swapped_for_link, "is not a plain file"),
    ],
)
def test_a_hostile_rollback_is_refused_with_nothing_changed(
    at_new: Path, args: list[str], spoil: object, said: str
) -> None:
    if callable(spoil):
        spoil(at_new)
    before = state(at_new)
    code, out, err = stairway("plugin", "rollback", *args, "--site", str(at_new))
    assert code == 2, out + err
    assert said in err and "hint:" in err and "Traceback" not in err
    assert state(at_new) == before
    assert not (at_new.parent / "backups" / "plugins" / "upgrade.journal").exists()


@pytest.mark.parametrize(
    ("point", "finished"),
    [
        ("between:plugin-swap", False),
        ("before:plugin-commit", False),
        ("after:plugin-commit", True),
    ],
)
def test_a_kill_in_a_plugin_rollback_leaves_it_wholly_old_or_new(
    at_new: Path, point: str, finished: bool
) -> None:
    new = state(at_new)
    env = os.environ | {"STAIRWAY_FAULT": point, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    command = [sys.executable, "-m", "stairway", "plugin", "rollback", "ldap"]
    killed = subprocess.run([*command, "--site", str(at_new)], env=env, capture_output=True)
    assert killed.returncode == -9, killed.stderr
    code, out, err = stairway("plugin", "list", "--site", str(at_new), "--json")
    assert code == 0, out + err
    assert ("finished" if finished else "undone") in json.loads(out)["settled"]
    files, objects, release = state(at_new)
    assert release == "3.0.0"
    ldap = {k: v for k, v in files.items() if k.startswith("connectors/ldap/")}
    named_ldap = {v for v in objects.values() if v.startswith("ldap 1.")} - {"ldap 1.1.0"}
    if finished:
        assert named_ldap == {"ldap 1.2.0"}
        assert ldap["connectors/ldap/ldap.jar"] == hashlib.sha256(b"ldap 1.2.0" * 300).hexdigest()
    else:
        assert (files, objects) == new[:2]
    assert sorted(p.name for p in (at_new.parent / "data" / "connectors").iterdir()) == [
        "csv",
        "ldap",
    ]


REFERENCE = PluginReferenceModel(type="Connector", name="c.type", version="c.version")
MOVE = PluginMove("ldap", "connector", "1.2.0", "1.3.0")


@given(
    st.dictionaries(st.sampled_from(["type", "version", "x"]), st.sampled_from(["ldap", "1.2.0"]))
)
def test_repoint_moves_exactly_the_documents_naming_the_old_version(
    inner: dict[str, str],
) -> None:
    document: dict[str, object] = {"c": dict(inner)}
    names_old = inner.get("type") == "ldap" and inner.get("version") == "1.2.0"
    assert repoint(document, REFERENCE, MOVE) == names_old
    expected = (
        "1.3.0" if names_old else (inner.get("version") if inner.get("type") == "ldap" else None)
    )
    assert named_version(document, REFERENCE, "ldap") == expected


def test_a_snapshot_of_a_directory_with_a_link_out_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plug").mkdir()
    (tmp_path / "plug" / "out").symlink_to("../../secret")
    with pytest.raises(PluginError, match="points out of the plug-in directory"):
        plugin_snapshots.take(tmp_path / "backups", "p", "1.0.0", tmp_path / "plug")


def test_the_catalog_refuses_a_plugin_of_an_unknown_release(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    shutil.copytree(Path(__file__).parent / "catalogs" / "people", catalog)
    text_ = (catalog / "stairway.toml").read_text("utf-8")
    spoiled = PLUGINS.replace('"3.0.0" = "1.3.0"', '"9.0.0" = "1.3.0"')
    (catalog / "stairway.toml").write_text(text_ + spoiled, "utf-8")
    with pytest.raises(CatalogError, match=r"versions names release 9\.0\.0") as refused:
        load_catalog(catalog)
    assert refused.value.hint


@pytest.fixture
def at_old(tmp_path: Path) -> Path:
    """A SQLite site at 1.0.0 with ldap 1.2.0 and csv 2.0.0 and their objects."""
    return plugin_site(tmp_path, f"sqlite:///{tmp_path / 'app.db'}")


def test_plan_shows_the_plugin_moves_of_the_objects_step_as_verify_does(at_old: Path) -> None:
    code, out, err = stairway("plan", "--to", "3.0.0", "--site", str(at_old))
    assert code == 0, out + err
    assert "plug-in: 3 connector objects move ldap 1.2.0 -> 1.3.0" in out
    assert "plug-in: 2 connector objects move csv 2.0.0 -> 2.1.0" in out
    code, out, err = stairway("plan", "--to", "3.0.0", "--site", str(at_old), "--json")
    hops = {hop["to"]: hop["plugins"] for hop in json.loads(out)["steps"]}
    assert hops["2.0.0"] == []
    assert {(m["plugin"], m["from"], m["to"], m["objects"]) for m in hops["3.0.0"]} == {
        ("ldap", "1.2.0", "1.3.0", 3),
        ("ldap", "1.1.0", "1.3.0", 1),
        ("csv", "2.0.0", "2.1.0", 2),
    }


def _objects_seconds(site: Path) -> float:
    code, out, err = stairway("plan", "--to", "3.0.0", "--estimate", "--site", str(site), "--json")
    assert code == 0, out + err
    steps = json.loads(out)["steps"]
    return float(next(s["seconds"] for s in steps if s["step"].startswith("objects 2.0.0")))


def test_plan_estimate_counts_the_repointed_objects_in_the_objects_step(at_old: Path) -> None:
    with_plugins = _objects_seconds(at_old)
    ctx = context.open_context(at_old, None)
    with ctx.engine.begin() as conn:  # the users stay: only the repointing goes
        conn.execute(text("UPDATE objects SET data = '{}' WHERE type = 'Connector'"))
    dispose_all()
    assert (with_plugins - _objects_seconds(at_old)) * OBJECTS_PER_S == pytest.approx(6)


def test_a_rolling_upgrade_snapshots_first_and_moves_objects_once_the_old_release_is_gone(
    at_old: Path,
) -> None:
    ctx = context.open_context(at_old, None)
    plan = operations.plan(ctx, "3.0.0")
    two = [Instance(1, "http://10.0.0.1:8080"), Instance(2, "http://10.0.0.2:8080")]
    steps = rolling.rolling_steps(plan, two, with_releases=False, plugins=True)
    kinds = [s.kind for s in steps]
    assert kinds[:2] == [StepKind.BACKUP, StepKind.PLUGIN_SNAPSHOT]
    last_instance = max(i for i, k in enumerate(kinds) if k == StepKind.INSTANCE)
    last_deltas = max(i for i, k in enumerate(kinds) if k == StepKind.DELTAS)
    moved = kinds.index(StepKind.PLUGIN_OBJECTS)
    assert last_instance < last_deltas < moved == kinds.index(StepKind.CONTRACT) - 1
    assert StepKind.PLUGIN_OBJECTS in rolling.PAST_RETURN  # finished forward, never undone
    assert StepKind.PLUGIN_OBJECTS not in {s.kind for s in rolling.rolling_steps(plan, two, False)}

    state = JournalState("u", {"to": "3.0.0", "steps": [s.as_json() for s in steps]}, ())
    done = rolling.plugin_objects(ctx, steps[moved], state)
    dispose_all()
    assert done["plugins"] == [
        "3 connector objects move ldap 1.2.0 -> 1.3.0",
        "1 connector object moves ldap 1.1.0 -> 1.3.0",
        "2 connector objects move csv 2.0.0 -> 2.1.0",
    ]
    assert set(named(at_old).values()) == {"ldap 1.3.0", "csv 2.1.0"}


def test_verify_says_that_agents_snapshot_the_plugin_directories_on_their_hosts(
    at_old: Path,
) -> None:
    code, out, err = stairway("verify", "--to", "3.0.0", "--site", str(at_old), "--json")
    assert code == 0, out + err
    said = [f["message"] for f in json.loads(out)["findings"]]
    assert not [m for m in said if "agent hosts" in m], said  # no agents: nothing to say
    ctx = context.open_context(at_old, None)
    with ctx.engine.begin() as conn:
        ensure_tables(conn)
        fleet_store.enroll(conn, "edge-1", None)
        fleet_store.enroll(conn, "edge-2", None)
    dispose_all()
    code, out, err = stairway("verify", "--to", "3.0.0", "--site", str(at_old), "--json")
    found = [f for f in json.loads(out)["findings"] if "agent hosts" in f["message"]]
    assert [f["severity"] for f in found] == ["info"], out + err  # covered: no warning
    assert "2 agents are enrolled and the upgrade moves csv, ldap" in str(found)
    assert "snapshots the directories it holds" in str(found)
    code, out, err = stairway("verify", "--to", "2.0.0", "--site", str(at_old), "--json")
    assert code == 0, out + err
    assert "agent hosts" not in out  # no plug-in moves on the way to 2.0.0


def test_an_upgrade_moves_objects_a_plugin_rollback_left_at_an_older_version(
    at_old: Path,
) -> None:
    ctx = context.open_context(at_old, None)
    with ctx.engine.begin() as conn:  # one newer than the target, one that is no version
        for oid, at in (("c-7", "1.4.0"), ("c-8", "nightly")):
            body = orjson.dumps({"connector": {"type": "ldap", "version": at}}).decode()
            conn.execute(
                text("INSERT INTO objects VALUES (:o, 'Connector', :d, '1.0.0')"),
                {"o": oid, "d": body},
            )
    dispose_all()
    code, out, err = stairway("verify", "--to", "3.0.0", "--site", str(at_old), "--json")
    said = [f["message"] for f in json.loads(out)["findings"] if f["topic"] == "plug-ins"]
    assert [m.split(" (")[0] for m in said if "ldap" in m] == [
        "3 connector objects move ldap 1.2.0 -> 1.3.0",
        "1 connector object moves ldap 1.1.0 -> 1.3.0",
    ], out + err
    code, out, err = stairway("plan", "--to", "3.0.0", "--site", str(at_old), "--json")
    assert code == 0, out + err
    moved = [(m["from"], m["objects"]) for s in json.loads(out)["steps"] for m in s["plugins"]]
    assert ("1.1.0", 1) in moved and ("1.2.0", 3) in moved

    ctx = context.open_context(at_old, None)
    said = operations.plugins.move_for_upgrade(ctx, "3.0.0", "2.0.0")
    dispose_all()
    assert "1 connector object moves ldap 1.1.0 -> 1.3.0" in said
    assert named(at_old) == {
        **{o: "ldap 1.3.0" for o in ("c-1", "c-2", "c-3", "c-4")},
        **{"c-5": "csv 2.1.0", "c-6": "csv 2.1.0", "c-7": "ldap 1.4.0", "c-8": "ldap nightly"},
    }


VERSIONS = st.sampled_from(["0.9", "1.1.0", "1.2.0", "1.2.5", "1.3.0", "1.4.0", "rc", ""])


@given(st.lists(VERSIONS, max_size=12))
def test_catching_up_leaves_no_object_older_than_the_new_version(named_: list[str]) -> None:
    after = list(named_)
    moves = catching_up(MOVE, set(named_), "pep440")
    assert moves[0] == MOVE and all(m.new == MOVE.new for m in moves)
    for move in moves:
        after = [move.new if v == move.old else v for v in after]
    for before, now in zip(named_, after, strict=True):
        older = before not in ("rc", "") and Version(before) < Version("1.3.0")
        assert now == ("1.3.0" if older else before)


def test_a_snapshot_keeps_empty_directories_and_refuses_one_turned_into_a_link(
    tmp_path: Path,
) -> None:
    plug = tmp_path / "plug"
    (plug / "work" / "cache").mkdir(parents=True)
    (plug / "logs").mkdir()
    (plug / "lib").mkdir()
    (plug / "lib" / "a.jar").write_bytes(b"a")
    taken = plugin_snapshots.take(tmp_path / "backups", "p", "1.0.0", plug)
    assert taken.dirs == ("logs", "work/cache")
    manifest = json.loads((taken.path / "manifest.json").read_text("utf-8"))
    assert manifest["dirs"] == ["logs", "work/cache"]
    plugin_snapshots.check(taken)
    plugin_snapshots.stage(taken, tmp_path / "staged")
    assert (tmp_path / "staged" / "work" / "cache").is_dir()
    assert (tmp_path / "staged" / "logs").is_dir()
    assert tree(tmp_path / "staged") == tree(plug)

    (taken.path / "files" / "extra").mkdir()
    with pytest.raises(PluginError, match="extra is there but not in its manifest"):
        plugin_snapshots.check(taken)
    (taken.path / "files" / "extra").rmdir()
    (taken.path / "files" / "logs").rmdir()
    (taken.path / "files" / "logs").symlink_to("/etc")
    with pytest.raises(PluginError, match="logs is not a directory inside the snapshot"):
        plugin_snapshots.check(taken)
