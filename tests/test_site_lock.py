"""One command at a time changes a site, across real processes, on SQLite and PostgreSQL: a second
one exits 2 naming the first; the first finishes and leaves a valid journal; read-only commands
go on beside it; the lock dies with a killed holder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import prestarted
from cli_runner import stairway
from stairway import context, operations, sitelock
from stairway.database import dispose_all
from stairway.errors import SiteBusy
from stairway.journal import ACTIVE, HISTORY, read
from stairway.schema.lock import ADVISORY_KEY
from stairway.secrets import SecretStore
from stairway.sitelock import HOLD, advisory_key, is_held, read_holder, site_lock
from test_upgrade import build_site, fingerprint, stairway_stop

TARGET = "3.0.0"


@dataclass
class Held:
    """A command started in a process of its own that pauses once it holds the lock."""

    process: subprocess.Popen[str]
    go: Path  # created by the test: the command goes on

    @property
    def pid(self) -> int:
        return self.process.pid

    def finish(self) -> tuple[int, str, str]:
        self.go.touch()
        out, err = self.process.communicate(timeout=240)
        return self.process.returncode, out, err


def command(site: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "stairway", *args, "--site", str(site)]


def run(site: Path, *args: str, hold: str | None = None) -> subprocess.CompletedProcess[str]:
    """``stairway ARGS`` to its end, in a process of its own (forked ready-imported): another
    process than the holder's, as the lock needs, without an import of a second or more."""
    env = {k: v for k, v in os.environ.items() if k != HOLD}
    if hold:
        env[HOLD] = hold
    return prestarted.run([*args, "--site", str(site)], env, timeout=240)


def hold(site: Path, *args: str) -> Held:
    """Start ``stairway ARGS`` and return once it holds the site lock (and waits for ``go``)."""
    go = site.parent / f"go-{time.monotonic_ns()}"
    env = {**os.environ, HOLD: f"300:{go}"}
    process = subprocess.Popen(
        command(site, *args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lock = site.parent / "backups" / sitelock.FILE
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        holder = read_holder(lock) if lock.exists() else None
        if holder is not None and holder.pid == process.pid:
            return Held(process, go)
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"{args} never held the lock: {process.communicate()}")


def refused_by(done: subprocess.CompletedProcess[str], first: Held, *args: str) -> None:
    """``done`` exited 2 naming ``first``, started as ``stairway ARGS``, as the lock's holder."""
    refused(done.returncode, done.stderr, first, *args)


def refused(code: int, err: str, first: Held, *args: str) -> None:
    assert code == 2, err
    assert "another stairway command changes this site" in err, err
    assert f"pid {first.pid}, `stairway {' '.join(args)} --site" in err, err
    assert "if that process is gone, the lock is released with it" in err


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Iterator[Path]:
    path = build_site(tmp_path / "site", database_url)
    (path.parent / "backups").mkdir(exist_ok=True)  # where the lock names its holder
    with path.open("a", encoding="utf-8") as toml:
        toml.write('\n[secrets]\nkey_file = "site.key"\n')
    code, _, err = stairway("secrets", "init", "--site", str(path))
    assert code == 0, err
    ctx = context.open_context(path, None)
    SecretStore(ctx.engine, context.secret_keys(ctx)).put("ldap/password", "s3cret")
    dispose_all()
    yield path
    stairway_stop(path)
    dispose_all()


def journal_is_whole(site: Path) -> None:
    backups = site.parent / "backups"
    assert not (backups / ACTIVE).exists()
    for path in (backups / HISTORY).glob("*.journal"):
        state = read(path)
        assert not state.damaged and not state.torn, path
        assert state.ended in ("finished", "rolled-back"), path


# --- pairs of site-changing commands started together --------------------------------------


def test_upgrade_beside_upgrade_resume(site: Path) -> None:
    first = hold(site, "upgrade", "--to", TARGET)
    refused_by(run(site, "upgrade", "--resume"), first, "upgrade", "--to", TARGET)
    code, _, err = first.finish()
    assert code == 0, err
    journal_is_whole(site)
    nothing = run(site, "upgrade", "--resume")
    assert nothing.returncode == 2 and "no interrupted upgrade" in nothing.stderr
    assert fingerprint(site)["release"] == TARGET


def test_upgrade_beside_restore(site: Path) -> None:
    backup = operations.backup(context.open_context(site, None)).id
    dispose_all()
    first = hold(site, "upgrade", "--to", TARGET)
    refused_by(run(site, "restore", backup, "--yes"), first, "upgrade", "--to", TARGET)
    code, _, err = first.finish()
    assert code == 0, err
    journal_is_whole(site)
    assert fingerprint(site)["release"] == TARGET


def test_restore_beside_import(site: Path, tmp_path: Path) -> None:
    ctx = context.open_context(site, None)
    backup = operations.backup(ctx).id
    export = tmp_path / "site.export.zst"
    operations.export(ctx, export, 100)
    dispose_all()
    first = hold(site, "restore", backup, "--yes")
    refused_by(run(site, "import", str(export)), first, "restore", backup, "--yes")
    code, _, err = first.finish()
    assert code == 0, err
    after = run(site, "import", str(export))
    assert after.returncode == 0, after.stderr


def test_secrets_rekey_beside_rollback(site: Path) -> None:
    first = hold(site, "secrets", "rekey")
    refused_by(run(site, "rollback"), first, "secrets", "rekey")
    code, out, err = first.finish()
    assert code == 0 and "now seals 1 secret(s)" in out, err


def test_migrate_beside_config_migrate(site: Path) -> None:
    first = hold(site, "migrate")
    refused_by(run(site, "config", "migrate"), first, "migrate")
    code, _, err = first.finish()
    assert code == 0, err
    after = run(site, "config", "migrate")
    assert after.returncode == 0, after.stderr


def test_upgrade_beside_objects_rewrite(site: Path) -> None:
    first = hold(site, "upgrade", "--to", TARGET)
    refused_by(run(site, "objects", "rewrite"), first, "upgrade", "--to", TARGET)
    code, _, err = first.finish()
    assert code == 0, err
    after = run(site, "objects", "rewrite")
    assert after.returncode == 0, after.stderr
    journal_is_whole(site)


def test_background_run_beside_upgrade(site: Path) -> None:
    first = hold(site, "background", "run")
    refused_by(run(site, "upgrade", "--to", TARGET), first, "background", "run")
    code, _, err = first.finish()
    assert code == 0, err
    after = run(site, "upgrade", "--to", TARGET)
    assert after.returncode == 0, after.stderr
    journal_is_whole(site)


def test_the_shards_of_one_import_share_the_lock(site: Path, tmp_path: Path) -> None:
    export = tmp_path / "site.export.zst"
    operations.export(context.open_context(site, None), export, 20)
    dispose_all()
    first = hold(site, "import", str(export), "--shard", "1/2")
    try:
        other = run(site, "import", str(export), "--shard", "2/2")
        assert other.returncode == 0, other.stderr
        refused_by(run(site, "migrate"), first, "import", str(export), "--shard", "1/2")
    finally:
        code, _, err = first.finish()
    assert code == 0, err


# --- every command that changes a site, and none that only reads ----------------------------

CHANGING = [
    ("upgrade", "--to", TARGET),
    ("upgrade", "--resume"),
    ("upgrade", "--to", TARGET, "--rolling"),
    ("rollback",),
    ("restore", "some-backup", "--yes"),
    ("migrate",),
    ("migrate", "--down-to", "1", "--allow-data-loss"),
    ("baseline", "--at", "1"),
    ("repair",),
    ("init", "--version", "1.0.0"),
    ("config", "migrate"),
    ("deltas", "apply"),
    ("deltas", "skip", "some-delta", "--reason", "ours"),
    ("objects", "rewrite"),
    ("import", "some.export.zst"),
    ("backup",),
    ("background", "run"),
    ("secrets", "init"),
    ("secrets", "set", "ldap/password", "--from-env", "HOME"),
    ("secrets", "delete", "ldap/password"),
    ("secrets", "rekey"),
    ("secrets", "import", "some.bundle", "--host-key", "host.key"),
]

READING = [
    ("status",),
    ("plan", "--to", TARGET),
    ("verify", "--to", TARGET),
    ("backups",),
    ("audit", "show"),
    ("notes",),
    ("migrate", "--dry-run"),
    ("config", "migrate", "--dry-run"),
    ("deltas", "apply", "--dry-run"),
    ("secrets", "list"),
]


def test_every_changing_command_is_refused_and_reading_ones_go_on(
    site: Path, tmp_path: Path
) -> None:
    before = fingerprint(site)
    first = hold(site, "migrate")
    try:
        for args in CHANGING:
            code, _, err = stairway(*args, "--site", str(site))
            refused(code, err, first, "migrate")
        for args in READING:
            code, _, err = stairway(*args, "--site", str(site))
            assert code == 0, (args, err)
        code, _, err = stairway("export", "--out", str(tmp_path / "e.zst"), "--site", str(site))
        assert code == 0, err
    finally:
        first.process.send_signal(signal.SIGKILL)  # the holder dies holding it
        first.process.communicate(timeout=60)
    assert fingerprint(site) == before
    code, _, err = stairway("migrate", "--site", str(site))
    assert code == 0, err  # the lock died with its holder


def test_a_killed_holder_releases_the_lock(site: Path) -> None:
    first = hold(site, "upgrade", "--to", TARGET)
    first.process.send_signal(signal.SIGKILL)
    first.process.communicate(timeout=60)
    assert read_holder(site.parent / "backups" / sitelock.FILE) is not None, "its name is stale"
    started = time.monotonic()
    after = run(site, "upgrade", "--to", TARGET)
    assert after.returncode == 0, after.stderr
    assert time.monotonic() - started < 120
    journal_is_whole(site)


def test_commands_started_at_the_same_instant_one_proceeds(site: Path) -> None:
    for round_ in range(5):
        ends = race(site, site.parent / f"go-{round_}", ("migrate",), ("config", "migrate"))
        assert sorted(e.returncode for e in ends) == [0, 2], ends
        (winner,) = [e.pid for e in ends if e.returncode == 0]
        (loser,) = [e for e in ends if e.returncode]
        assert f"pid {winner}, `stairway " in loser.stderr, loser.stderr


def race(site: Path, go: Path, *commands: tuple[str, ...]) -> list[prestarted.Ran]:
    """``commands`` started together, forked ready-imported a few milliseconds apart (no import
    between their starts and their first try of the lock). A winner holds the lock until the
    first of them has ended, or 120 s pass: no fixed wait that a slow machine could outlast."""
    env = {**os.environ, HOLD: f"120:{go}"}
    ends: list[prestarted.Ran] = []
    one_ended = threading.Event()

    def start(args: tuple[str, ...]) -> None:
        ends.append(prestarted.run([*args, "--site", str(site)], env, timeout=240))
        one_ended.set()

    threads = [threading.Thread(target=start, args=(args,)) for args in commands]
    for thread in threads:
        thread.start()
    one_ended.wait(120)
    go.touch()
    for thread in threads:
        thread.join()
    return ends


def test_two_site_files_naming_one_database_collide(site: Path) -> None:
    other = site.with_name("other-site.toml")
    text = site.read_text(encoding="utf-8").replace('backup_dir = "backups"', 'backup_dir = "b2"')
    other.write_text(text, encoding="utf-8")
    first = hold(site, "migrate")
    try:
        refused_by(run(other, "config", "migrate"), first, "migrate")
    finally:
        code, _, err = first.finish()
    assert code == 0, err
    assert run(other, "config", "migrate").returncode == 0


# --- within one process ------------------------------------------------------------------------


def test_the_lock_is_reentrant_within_a_process_and_across_its_threads(site: Path) -> None:
    ctx = context.open_context(site, None)
    seen: list[bool] = []
    with site_lock(ctx, command="outer"):
        with site_lock(ctx):
            assert is_held(ctx)
        assert is_held(ctx), "the inner release only counts down"
        thread = threading.Thread(target=lambda: seen.append(_locks_again(ctx)))
        thread.start()
        thread.join()
        holder = read_holder(site.parent / "backups" / sitelock.FILE)
        assert holder is not None and holder.command == "outer" and holder.pid == os.getpid()
    assert seen == [True] and not is_held(ctx)
    assert (site.parent / "backups" / sitelock.FILE).read_bytes() == b"", "no stale name left"
    dispose_all()


def _locks_again(ctx: context.Context) -> bool:
    with site_lock(ctx):
        return is_held(ctx)


def test_a_refused_command_holds_nothing_afterwards(site: Path) -> None:
    first = hold(site, "migrate")
    ctx = context.open_context(site, None)
    try:
        with pytest.raises(SiteBusy) as caught, site_lock(ctx):
            pass
        assert caught.value.holder and f"pid {first.pid}" in caught.value.holder
        assert not is_held(ctx)
    finally:
        code, _, err = first.finish()
    assert code == 0, err
    with site_lock(ctx):
        assert is_held(ctx)
    dispose_all()


def test_the_database_key_is_not_the_migrators() -> None:
    assert advisory_key("app") != ADVISORY_KEY and advisory_key("app") != advisory_key("app2")
    assert 0 <= advisory_key("app") < 2**63


def test_a_site_without_backup_dir_locks_beside_its_database_or_site_file(
    site: Path, database_url: str
) -> None:
    bare = site.with_name("bare.toml")
    lines = site.read_text(encoding="utf-8").splitlines()
    bare.write_text("\n".join(x for x in lines if not x.startswith("backup_dir")) + "\n", "utf-8")
    ctx = context.open_context(bare, None)
    files = sitelock.lock_files(ctx.site, ctx.engine)
    if database_url.startswith("sqlite"):
        database = Path(database_url.removeprefix("sqlite:///")).resolve()
        assert files == (database.with_name(database.name + sitelock.DATABASE_SUFFIX),)
    else:
        assert files == (bare.resolve().with_name(f".bare.toml{sitelock.DATABASE_SUFFIX}"),)
    with site_lock(ctx):
        assert all(f.exists() for f in files)
    dispose_all()
