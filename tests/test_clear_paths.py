"""A release's ``clear`` paths: removed from the data directory after the backup and before the
start, restored by a rollback (after a failure, or after a kill at the clear step), shown by
``plan`` and ``verify``, and refused when they could lead out of the data directory."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest
from pydantic import ValidationError
from sqlalchemy import text

from cli_runner import stairway
from stairway import clearing, context, faults
from stairway.catalog.manifest import ReleaseModel
from stairway.database import dispose_all
from stairway.journal import ACTIVE
from test_upgrade import build_site

CLEARED = '[[release]]\nversion = "2.0.0"\nschema = 1\nclear = ["tx-object-store", "cache.lock"]\n'


def add_clear(site: Path) -> None:
    manifest = site.parent / "catalog" / "stairway.toml"
    body = manifest.read_text("utf-8")
    manifest.write_text(
        body.replace('[[release]]\nversion = "2.0.0"\nschema = 1\n', CLEARED), "utf-8"
    )


def fill_data(data: Path) -> None:
    store = data / "tx-object-store" / "ShadowNoFileLockStore" / "defaultStore"
    store.mkdir(parents=True)
    (store / "tx-0001").write_bytes(b"\x00\x01prepared" * 100)
    (store / "tx-0002").write_bytes(b"committed")
    os.chmod(store / "tx-0002", 0o600)
    (data / "cache.lock").write_text("pid 4242\n", "utf-8")


@pytest.fixture
def site(tmp_path: Path, sqlite_database: str) -> Path:
    path = build_site(tmp_path, sqlite_database, service=False)
    add_clear(path)
    fill_data(path.parent / "data")
    return path


def tree(root: Path) -> dict[str, str]:
    """Every entry under ``root``: a file's digest and mode, a directory, a link's target."""
    found = {}
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        if path.is_symlink():
            found[name] = f"link {os.readlink(path)}"
        elif path.is_dir():
            found[name] = "dir"
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            found[name] = f"{digest} {oct(path.stat().st_mode)}"
    return found


def state(site: Path) -> tuple[str, str, dict[str, str]]:
    """The release recorded, a digest of the product's rows, and the data directory."""
    ctx = context.open_context(site, None)
    with ctx.engine.connect() as conn:
        rows = sorted(repr(tuple(r)) for r in conn.execute(text("SELECT * FROM objects")))
    release = str(context.current_version(ctx))
    dispose_all()
    digest = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    return release, digest, tree(site.parent / "data")


def test_the_upgrade_clears_the_paths_after_the_backup_and_keeps_the_rest(site: Path) -> None:
    code, out, err = stairway("upgrade", "--to", "2.0.0", "--site", str(site), "--json")
    assert code == 0, err
    steps = orjson.loads(out)["steps"]
    names = [s["step"] for s in steps]
    assert names.index("backup") < names.index("clear 1.0.0 -> 2.0.0") < names.index("start")
    assert steps[names.index("clear 1.0.0 -> 2.0.0")]["cleared"] == [
        "tx-object-store",
        "cache.lock",
    ]
    data = site.parent / "data"
    assert not (data / "tx-object-store").exists() and not (data / "cache.lock").exists()
    assert (data / "avatar.png").is_file(), "only the listed paths go"


def test_plan_and_verify_show_the_paths(site: Path) -> None:
    code, out, err = stairway("plan", "--to", "2.0.0", "--site", str(site), "--json")
    assert code == 0, err
    assert orjson.loads(out)["steps"][0]["clear"] == ["tx-object-store", "cache.lock"]
    code, out, _ = stairway("plan", "--to", "2.0.0", "--site", str(site))
    assert "clears from the data directory: tx-object-store, cache.lock" in out
    code, out, err = stairway("verify", "--to", "2.0.0", "--site", str(site), "--json")
    assert code == 0, err
    found = [f for f in orjson.loads(out)["findings"] if f["topic"] == "data"]
    assert len(found) == 1 and not found[0]["blocking"]
    assert "removes tx-object-store, cache.lock" in found[0]["message"]
    assert "2 there now" in found[0]["message"]


@pytest.mark.parametrize("point", ["after:clear", "after:clear-path#1"])
def test_a_failure_after_clearing_rolls_back_to_the_exact_files(
    site: Path, point: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = state(site)
    monkeypatch.setattr(faults, "_reached", Counter())  # "#1" counts from this run on
    monkeypatch.setenv("STAIRWAY_FAULT", point)
    monkeypatch.setenv("STAIRWAY_FAULT_ACTION", "eio")
    code, _, err = stairway("upgrade", "--to", "2.0.0", "--site", str(site))
    assert code == 1, err
    assert "clear 1.0.0 -> 2.0.0 failed" in err and "Rolled back" in err
    assert state(site) == before
    assert not (site.parent / "backups" / ACTIVE).exists()


def killed_upgrade(site: Path, point: str) -> None:
    environment = {**os.environ, "STAIRWAY_FAULT": point}
    command = [sys.executable, "-m", "stairway", "upgrade", "--to", "2.0.0", "--site", str(site)]
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr
    assert (site.parent / "backups" / ACTIVE).exists()


def test_a_kill_right_after_the_clear_step_is_rolled_back_whole(site: Path) -> None:
    before = state(site)
    killed_upgrade(site, "after:clear")  # the paths are gone, the journal does not say so yet
    assert state(site) != before
    code, out, err = stairway("rollback", "--site", str(site))
    assert code == 0 and "1.0.0" in out, err
    assert state(site) == before


def test_a_kill_halfway_through_the_clear_step_is_resumed(site: Path) -> None:
    killed_upgrade(site, "after:clear-path#1")  # one path removed, the other still there
    assert (site.parent / "data" / "cache.lock").exists()
    code, _, err = stairway("upgrade", "--resume", "--site", str(site))
    assert code == 0, err
    release, _, data = state(site)
    assert release == "2.0.0" and "avatar.png" in data
    assert not any(name.startswith(("tx-object-store", "cache.lock")) for name in data)


@pytest.mark.parametrize(
    ("paths", "message"),
    [
        (["/var/lib/app/tx"], "is not a relative path"),
        (["~/tx"], "is not a relative path"),
        (["../tx-object-store"], "leaves the data directory"),
        (["cache/../../etc"], "leaves the data directory"),
        (["."], "is the data directory itself"),
        ([""], "is the data directory itself"),
        (["a\\b"], "is not a relative path"),
        (["tx\x00"], "NUL"),
        (["tx", "./tx"], "listed twice"),
    ],
)
def test_a_path_that_could_leave_the_data_directory_is_refused(
    paths: list[str], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        ReleaseModel.model_validate({"version": "2.0.0", "schema": 1, "clear": paths})


def test_the_catalog_check_names_each_release_with_a_hostile_path(shop_catalog: Path) -> None:
    manifest = shop_catalog / "stairway.toml"
    body = manifest.read_text("utf-8")
    for version, entry in (("2.0.0", '["../tx"]'), ("2.1.0", '["/etc"]')):
        body = body.replace(f'version = "{version}"\n', f'version = "{version}"\nclear = {entry}\n')
    manifest.write_text(body, "utf-8")
    code, out, err = stairway("check", "--catalog", str(shop_catalog), "--json")
    assert code == 2 and "Traceback" not in out + err
    causes = [p["cause"] for p in orjson.loads(out)["problems"]]
    assert any("release[4].clear" in c and "leaves the data directory" in c for c in causes)
    assert any("release[5].clear" in c and "is not a relative path" in c for c in causes)


@pytest.mark.parametrize("link", ["tx-object-store", "cache.lock"])
def test_a_link_out_of_the_data_directory_blocks_before_anything_is_touched(
    site: Path, link: str
) -> None:
    data, outside = site.parent / "data", site.parent / "precious"
    outside.mkdir()
    (outside / "keep").write_text("keep me", "utf-8")
    target = data / link
    if target.is_dir():
        for path in sorted(target.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        target.rmdir()
    else:
        target.unlink()
    target.symlink_to(outside)
    before = state(site)
    code, _, err = stairway("upgrade", "--to", "2.0.0", "--site", str(site))
    assert code == 2 and "lead out of the data directory" in err, err
    assert state(site) == before and (outside / "keep").read_text("utf-8") == "keep me"
    assert not list((site.parent / "backups").glob("*.tar.zst"))


def test_a_link_through_a_parent_is_refused_by_the_step_itself(tmp_path: Path) -> None:
    data, outside = tmp_path / "data", tmp_path / "outside"
    (outside / "store").mkdir(parents=True)
    data.mkdir()
    (data / "cache").symlink_to(outside)
    (data / "inner").mkdir()
    (data / "inner" / "x").write_text("x", "utf-8")
    with pytest.raises(clearing.ClearRefused, match="outside the data directory"):
        clearing.clear(data, ["inner", "cache/store"])
    assert (outside / "store").is_dir() and (data / "inner" / "x").exists(), "nothing removed"
    assert clearing.clear(data, ["inner", "gone"]) == ["inner"]
    assert clearing.clear(data, ["inner"]) == [], "a second run is a no-op"


def test_without_a_data_directory_verify_blocks(site: Path) -> None:
    site.write_text(site.read_text("utf-8").replace('data_dir = "data"\n', ""), "utf-8")
    code, out, _ = stairway("verify", "--to", "2.0.0", "--site", str(site), "--json")
    found = [f for f in orjson.loads(out)["findings"] if f["topic"] == "data"]
    assert code == 2 and found[0]["blocking"] and "names no data_dir" in found[0]["message"]
