"""Secrets at rest on SQLite and PostgreSQL: round trips, tampering and wrong keys refused with
what to do, rotation while readers read (and after a kill -9), host moves, and backups that
never hold a secret in clear nor the key that opens it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

import prestarted
from cli_runner import stairway
from stairway import audit, context, operations
from stairway.database import dispose_all
from stairway.errors import BackupError, SecretError
from stairway.secrets import KeySource, SecretStore, rekey
from stairway.secrets.keyring import ENVIRONMENT, KeyRing, SiteKey, read_key_file, write_key_file
from stairway.secrets.store import retired_file

CATALOG = Path(__file__).parent / "catalogs" / "people"
CLEAR = "hunter2-correct-horse-battery-staple"


def make_site(root: Path, database_url: str, key_file: str = "site.key") -> Path:
    catalog = root / "catalog"
    if not catalog.exists():
        shutil.copytree(CATALOG, catalog, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "notes.txt").write_text("plain data\n")
    path = root / "site.toml"
    path.write_text(
        f'[site]\ndatabase = "{database_url}"\ncatalog = "{catalog}"\n'
        f'data_dir = "data"\nbackup_dir = "backups"\n\n[secrets]\nkey_file = "{key_file}"\n',
        "utf-8",
    )
    operations.init(context.open_context(path, None), "1.0.0")
    code, _out, err = stairway("secrets", "init", "--site", str(path))
    assert code == 0, err
    return path


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Path:
    return make_site(tmp_path, database_url)


def store_of(site: Path) -> SecretStore:
    ctx = context.open_context(site, None)
    return SecretStore(ctx.engine, context.secret_keys(ctx))


def raw_rows(site: Path) -> list[tuple[str, str, bytes, bytes]]:
    ctx = context.open_context(site, None)
    with ctx.engine.connect() as conn:
        rows = conn.execute(text("SELECT name, key_id, data_key, value FROM stairway_secrets"))
        return [(r[0], r[1], bytes(r[2]), bytes(r[3])) for r in rows]


def test_round_trip_with_nothing_in_clear_in_the_database_or_the_audit_log(site: Path) -> None:
    store = store_of(site)
    store.put("ldap/password", CLEAR)
    store.put("smtp/key", b"\x00\xffbinary")
    assert store.get("ldap/password") == CLEAR.encode()
    assert store.get("smtp/key") == b"\x00\xffbinary"
    assert [n for n, _k, _u in store.names()] == ["ldap/password", "smtp/key"]
    for _name, _key, data_key, value in raw_rows(site):
        assert CLEAR.encode() not in value and CLEAR.encode() not in data_key
    ctx = context.open_context(site, None)
    with ctx.engine.connect() as conn:
        logged = [entry for entry in audit.entries(conn) if entry.action == "secret.set"]
    assert {e.data["name"] for e in logged} == {"ldap/password", "smtp/key"}
    assert CLEAR not in str([e.data for e in logged])
    store.delete("smtp/key")
    with pytest.raises(SecretError, match="no secret 'smtp/key'"):
        store.get("smtp/key")


@given(value=st.binary(max_size=2000), name=st.text(min_size=1, max_size=40))
def test_any_value_under_any_printable_name_comes_back_as_it_went_in(
    tmp_path_factory: pytest.TempPathFactory, value: bytes, name: str
) -> None:
    root = tmp_path_factory.mktemp("prop")
    key = root / "site.key"
    write_key_file(key, KeyRing((SiteKey.generate(),)))
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{root / 'app.db'}")
    store = SecretStore(engine, KeySource(key))
    if not name.isprintable():
        with pytest.raises(SecretError, match="not a secret name"):
            store.put(name, value)
        return
    store.put(name, value)
    assert store.get(name) == value
    engine.dispose()


def test_tampered_ciphertext_and_a_value_moved_to_another_name_are_refused(site: Path) -> None:
    store = store_of(site)
    store.put("a", "first")
    store.put("b", "second")
    ctx = context.open_context(site, None)
    with ctx.engine.begin() as conn:
        query = text("SELECT value FROM stairway_secrets WHERE name='a'")
        value = bytes(conn.execute(query).one()[0])
        flipped = value[:-1] + bytes([value[-1] ^ 1])
        conn.execute(text("UPDATE stairway_secrets SET value=:v WHERE name='a'"), {"v": flipped})
    with pytest.raises(SecretError, match="secret 'a' does not decrypt"):
        store.get("a")
    with ctx.engine.begin() as conn:
        b = conn.execute(text("SELECT data_key, value FROM stairway_secrets WHERE name='b'")).one()
        conn.execute(
            text("UPDATE stairway_secrets SET data_key=:k, value=:v WHERE name='a'"),
            {"k": bytes(b[0]), "v": bytes(b[1])},
        )
    with pytest.raises(SecretError, match="secret 'a' does not decrypt"):
        store.get("a")  # b's sealed value under a's name: bound to its name, it does not open
    assert store.get("b") == b"second"


def test_a_wrong_key_a_loose_key_file_and_no_key_each_say_what_to_do(
    site: Path, tmp_path: Path
) -> None:
    store_of(site).put("a", CLEAR)
    key_file = tmp_path / "site.key"
    original = read_key_file(key_file)
    write_key_file(key_file, KeyRing((SiteKey.generate(),)))
    with pytest.raises(SecretError) as wrong:
        store_of(site).get("a")
    assert f"sealed with site key {original.current.id}" in wrong.value.message
    assert "copy the key file" in wrong.value.hint
    key_file.chmod(0o644)
    code, _out, err = stairway("secrets", "get", "a", "--site", str(site))
    assert code != 0 and "can be read by others (mode 644)" in err and "chmod 600" in err
    key_file.unlink()
    code, _out, err = stairway("secrets", "get", "a", "--site", str(site))
    assert code != 0 and "does not exist" in err and "stairway secrets init" in err


def test_the_key_may_come_from_the_environment(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ring = read_key_file(tmp_path / "site.key")
    (tmp_path / "site.key").unlink()
    monkeypatch.setenv(ENVIRONMENT, ring.encode().decode())
    store_of(site).put("a", CLEAR)
    assert store_of(site).get("a") == CLEAR.encode()
    with pytest.raises(SecretError, match="comes from the environment"):
        ctx = context.open_context(site, None)
        rekey(ctx.engine, context.secret_keys(ctx))


def test_rekey_in_another_process_under_concurrent_readers_loses_no_read(
    site: Path, tmp_path: Path
) -> None:
    store = store_of(site)
    expected = {f"connector/{n:04d}": f"value-{n}-{CLEAR}".encode() for n in range(600)}
    for name, value in expected.items():
        store.put(name, value)
    old = read_key_file(tmp_path / "site.key").current.id
    errors: list[str] = []
    reads = [0]
    stop = threading.Event()

    def reader(offset: int) -> None:
        own = store_of(site)  # its own key source: it learns of the rotation from the file
        names = list(expected)
        n = offset
        while not stop.is_set():
            name = names[n % len(names)]
            try:
                if own.get(name) != expected[name]:
                    errors.append(f"{name}: wrong value")
            except SecretError as err:
                errors.append(f"{name}: {err.message}")
            reads[0] += 1
            n += 7

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(3)]
    for thread in threads:
        thread.start()
    done = subprocess.run(
        [sys.executable, "-m", "stairway", "secrets", "rekey", "--site", str(site)],
        capture_output=True,
        text=True,
        check=False,
    )
    stop.set()
    for thread in threads:
        thread.join()
    assert done.returncode == 0, done.stderr
    assert errors == [] and reads[0] > 100
    ring = read_key_file(tmp_path / "site.key")
    assert len(ring.keys) == 1 and ring.current.id != old
    assert {key for _n, key, _d, _v in raw_rows(site)} == {ring.current.id}
    assert read_key_file(retired_file(tmp_path / "site.key")).current.id == old
    assert store_of(site).get("connector/0042") == expected["connector/0042"]


def test_a_rekey_killed_mid_way_is_finished_by_running_it_again(site: Path, tmp_path: Path) -> None:
    store = store_of(site)
    for n in range(450):  # three batches
        store.put(f"s{n:03d}", f"v{n}")
    dispose_all()
    env = os.environ | {"STAIRWAY_FAULT": "rekey:batch"}
    command = [sys.executable, "-m", "stairway", "secrets", "rekey", "--site", str(site)]
    killed = subprocess.run(command, env=env, capture_output=True, check=False)
    assert killed.returncode == -signal.SIGKILL
    ring = read_key_file(tmp_path / "site.key")
    assert len(ring.keys) == 2, "cut short: the new key and the old one, both readable"
    under = {key for _n, key, _d, _v in raw_rows(site)}
    assert under == {k.id for k in ring.keys}, "some secrets re-sealed, some not yet"
    assert store_of(site).get("s000") == b"v0" and store_of(site).get("s449") == b"v449"
    again = subprocess.run(command, capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    final = read_key_file(tmp_path / "site.key")
    assert final.keys == (ring.current,), "the rotation begun was finished, not restarted"
    assert {key for _n, key, _d, _v in raw_rows(site)} == {ring.current.id}
    assert all(store_of(site).get(f"s{n:03d}") == f"v{n}".encode() for n in range(0, 450, 37))


def test_secrets_move_to_a_new_host_sealed_to_its_key(
    site: Path, tmp_path: Path, sqlite_database: str
) -> None:
    store_of(site).put("ldap/password", CLEAR)
    store_of(site).put("smtp/key", "k2")
    new_host = tmp_path / "newhost"
    new_host.mkdir()
    target = make_site(new_host, f"sqlite:///{new_host / 'app.db'}")
    code, _out, err = stairway("secrets", "host-key", "--out", str(new_host / "hostkey"))
    assert code == 0, err
    assert (new_host / "hostkey" / "host.key").stat().st_mode & 0o777 == 0o600
    bundle = tmp_path / "move.json"
    public = str(new_host / "hostkey" / "host.pub")
    code, _out, err = stairway(
        "secrets", "export", "--to-host", public, "--out", str(bundle), "--site", str(site)
    )
    assert code == 0, err
    assert CLEAR.encode() not in bundle.read_bytes()
    stranger = tmp_path / "stranger"
    stairway("secrets", "host-key", "--out", str(stranger))
    code, _out, err = stairway(
        "secrets", "import", str(bundle), "--host-key", str(stranger / "host.key"),
        "--site", str(target),
    )  # fmt: skip
    assert code != 0 and "was sealed for host key" in err
    assert store_of(target).names() == []
    code, _out, err = stairway(
        "secrets", "import", str(bundle), "--host-key", str(new_host / "hostkey" / "host.key"),
        "--site", str(target),
    )  # fmt: skip
    assert code == 0, err
    assert store_of(target).get("ldap/password") == CLEAR.encode()
    assert store_of(target).get("smtp/key") == b"k2"
    theirs = read_key_file(new_host / "site.key").current.id
    assert {key for _n, key, _d, _v in raw_rows(target)} == {theirs}


def test_a_backup_holds_secrets_sealed_and_no_key_and_a_keyless_restore_says_what_is_missing(
    site: Path, tmp_path: Path
) -> None:
    store_of(site).put("ldap/password", CLEAR)
    key_file = tmp_path / "site.key"
    ring = read_key_file(key_file)
    code, _out, err = stairway("backup", "--site", str(site))
    assert code == 0, err
    (archive,) = (tmp_path / "backups").glob("*.tar.zst")
    with archive.open("rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as reader:
        plain = reader.read()
    assert CLEAR.encode() not in plain, "no clear secret in the backup"
    assert ring.current.line().split()[1].encode() not in plain, "no site key in the backup"
    store_of(site).put("ldap/password", "changed after the backup")
    write_key_file(key_file, KeyRing((SiteKey.generate(),)))  # another host, another key
    backup_id = archive.name.removesuffix(".tar.zst")
    code, _out, err = stairway("restore", backup_id, "--yes", "--site", str(site))
    assert code != 0
    assert f"1 secret(s) sealed with site key {ring.current.id}" in err
    assert "nothing was restored" in err and "copy the key file" in err
    write_key_file(key_file, ring)
    assert store_of(site).get("ldap/password") == b"changed after the backup", "live untouched"
    code, _out, err = stairway("restore", backup_id, "--yes", "--site", str(site))
    assert code == 0, err
    assert store_of(site).get("ldap/password") == CLEAR.encode()


def test_a_restore_after_a_rekey_points_at_the_retired_key(site: Path, tmp_path: Path) -> None:
    store_of(site).put("a", CLEAR)
    code, _out, err = stairway("backup", "--site", str(site))
    assert code == 0, err
    ctx = context.open_context(site, None)
    rekey(ctx.engine, context.secret_keys(ctx))
    (archive,) = (tmp_path / "backups").glob("*.tar.zst")
    code, _out, err = stairway(
        "restore", archive.name.removesuffix(".tar.zst"), "--yes", "--site", str(site)
    )
    assert code != 0 and "site.key.retired" in err and "retired by `secrets rekey`" in err


def test_a_key_file_inside_the_data_directory_is_refused_for_backups(
    tmp_path: Path, sqlite_database: str
) -> None:
    site = make_site(tmp_path, sqlite_database, key_file="data/site.key")
    with pytest.raises(BackupError, match="inside the data directory"):
        operations.backup(context.open_context(site, None))


def test_the_cli_takes_values_on_standard_input_and_never_prints_them_unasked(site: Path) -> None:
    def cli(*args: str, given: str | None = None) -> subprocess.CompletedProcess[str]:
        # a process of its own, its standard input not a terminal, forked ready-imported
        command = ["secrets", *args, "--site", str(site)]
        return prestarted.run(command, dict(os.environ), given=given)

    stored = cli("set", "ldap/password", given=CLEAR)
    assert stored.returncode == 0, stored.stderr
    assert CLEAR not in stored.stdout + stored.stderr
    listed = cli("list")
    assert "ldap/password" in listed.stdout and CLEAR not in listed.stdout
    assert cli("get", "ldap/password").stdout == CLEAR
    empty = cli("set", "other", given="")
    assert empty.returncode != 0 and "empty" in empty.stderr
    assert "other" not in cli("list").stdout
