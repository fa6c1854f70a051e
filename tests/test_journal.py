"""The upgrade journal survives torn writes: every line carries its checksum, a torn line is
skipped, marked as cut and never rewritten, a damaged line elsewhere stops a resume (a rollback
still puts the site back), a torn plan means nothing started, and a failed append is an error
that names the file."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

import prestarted
from stairway import journal as journal_module
from stairway.errors import ExitCode, JournalWriteError, UpgradeError
from stairway.faults import FAULT
from stairway.journal import ACTIVE, HISTORY, TORN, Journal, encode, read
from test_upgrade import build_site, fingerprint, stairway_stop

PLAN = {"from": "1.0.0", "to": "2.0.0", "steps": [{"kind": "backup"}, {"kind": "stop"}]}


def written(tmp_path: Path) -> Journal:
    """A journal of a plan and its first step done."""
    journal = Journal(tmp_path)
    journal.start("u-1", PLAN)
    journal.begin(0)
    journal.done(0, backup="b-1")
    return journal


def test_records_are_read_back_and_each_line_carries_its_checksum(tmp_path: Path) -> None:
    journal = written(tmp_path)
    state = read(journal.path)
    assert (state.upgrade_id, state.plan, state.done) == ("u-1", PLAN, {0})
    assert (state.torn, state.damaged) == (0, ())
    assert state.value("backup") == "b-1"
    for line in journal.path.read_bytes().splitlines():
        check, _, payload = line.partition(b"\t")
        assert len(check) == 16 and encode(orjson.loads(payload)) == line + b"\n"
    journal.record("finished")
    closed = journal.close("u-1")
    assert closed == tmp_path / HISTORY / "u-1.journal" and journal.active() is None
    assert [h.ended for h in journal.history()] == ["finished"]


def test_a_torn_last_record_is_not_written_and_never_rewritten(tmp_path: Path) -> None:
    whole = written(tmp_path).path.read_bytes()
    last = whole.rindex(b"\n", 0, len(whole) - 1) + 1  # where the `done` record's line starts
    for cut in range(last, len(whole) - 1):  # every length short of its newline
        folder = tmp_path / f"cut{cut}"
        folder.mkdir()
        journal = Journal(folder)
        journal.path.write_bytes(whole[:cut])
        state = read(journal.path)
        assert state.done == set() and state.value("backup") is None, cut
        assert (state.torn, state.damaged) == (0 if cut == last else 1, ())
        journal.record("finished")
        after = journal.path.read_bytes()
        assert after[:cut] == whole[:cut], "the bytes before the append are left as they were"
        again = read(journal.path)
        assert [r.event for r in again.records] == ["begin", "finished"], cut
        assert (again.torn, again.damaged) == (state.torn, ()), "still torn, not damage"


def test_a_record_whole_but_for_its_newline_counts_as_written(tmp_path: Path) -> None:
    journal = written(tmp_path)
    journal.path.write_bytes(journal.path.read_bytes()[:-1])
    assert read(journal.path).done == {0}
    journal.record("finished")
    assert [r.event for r in read(journal.path).records] == ["begin", "done", "finished"]


def test_a_flipped_bit_in_a_middle_line_skips_that_record_only(tmp_path: Path) -> None:
    whole = written(tmp_path).path.read_bytes()
    start = whole.index(b"\n") + 1
    end = whole.index(b"\n", start)  # the `begin` line, newline excluded
    for at in range(start, end):
        for bit in range(8):
            damaged = bytearray(whole)
            damaged[at] ^= 1 << bit
            path = tmp_path / "damaged.journal"
            path.write_bytes(bytes(damaged))
            state = read(path)
            assert [r.event for r in state.records] == ["done"], (at, bit)
            assert (state.upgrade_id, state.damaged, state.torn) == ("u-1", (2,), 0)


def test_a_torn_plan_alone_means_nothing_started_and_is_set_aside(tmp_path: Path) -> None:
    plan_line = encode({"event": "plan", "upgrade": "u-1", "plan": PLAN, "at": "x"})
    for cut in (0, 1, 17, len(plan_line) // 2, len(plan_line) - 2):
        folder = tmp_path / f"cut{cut}"
        journal = Journal(folder)
        folder.mkdir()
        journal.path.write_bytes(plan_line[:cut])
        assert journal.active() is None
        assert not journal.path.exists()
        (kept,) = (folder / HISTORY).glob(f"*{TORN}")
        assert kept.read_bytes() == plan_line[:cut]
        assert journal.history() == []
        journal.start("u-2", PLAN)  # the site has no interrupted upgrade: a new one starts
        assert read(journal.path).upgrade_id == "u-2"


def test_a_damaged_plan_beside_other_records_is_left_for_an_operator(tmp_path: Path) -> None:
    journal = written(tmp_path)
    whole = journal.path.read_bytes()
    # the plan line's checksum no longer matches: its first character changed, whatever it was
    damaged = (b"1" if whole[:1] == b"0" else b"0") + whole[1:]
    journal.path.write_bytes(damaged)
    with pytest.raises(UpgradeError, match="is not an upgrade journal"):
        journal.active()
    assert journal.path.read_bytes() == damaged
    with pytest.raises(UpgradeError):
        journal.start("u-2", PLAN)


def test_a_full_disk_is_an_error_naming_the_file(tmp_path: Path) -> None:
    journal = written(tmp_path)
    journal.path = Path("/dev/full")  # a real ENOSPC on every write
    with pytest.raises(JournalWriteError) as caught:
        journal.begin(1)
    assert caught.value.exit_code == ExitCode.NEEDS_OPERATOR
    assert caught.value.errno == errno.ENOSPC
    assert "/dev/full" in str(caught.value) and "No space left on device" in str(caught.value)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO, errno.EROFS])
def test_an_append_failing_half_way_leaves_a_torn_line_that_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    journal = written(tmp_path)
    before = journal.path.read_bytes()

    def half_then_fail(fd: int, data: bytes) -> None:
        os.write(fd, data[: len(data) // 2])
        raise OSError(code, os.strerror(code))

    with monkeypatch.context() as patch:
        patch.setattr(journal_module, "_write_all", half_then_fail)
        with pytest.raises(JournalWriteError, match=str(journal.path)) as caught:
            journal.begin(1)
    assert caught.value.errno == code and errno.errorcode[code] in str(caught.value)
    assert read(journal.path).torn == 1 and read(journal.path).done == {0}
    journal.begin(1)
    after = journal.path.read_bytes()
    assert after.startswith(before) and read(journal.path).records[-1].step == 1
    assert (read(journal.path).torn, read(journal.path).damaged) == (1, ())


def test_a_journal_of_the_earlier_format_reads_and_takes_new_records(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    legacy = [
        {"event": "plan", "upgrade": "u-0", "plan": PLAN, "at": "t"},
        {"event": "begin", "step": 0, "at": "t"},
        {"event": "done", "step": 0, "backup": "b-0", "at": "t"},
    ]
    journal.path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in legacy))
    state = journal.active()
    assert state is not None and state.done == {0} and state.value("backup") == "b-0"
    journal.begin(1)
    assert [r.event for r in read(journal.path).records] == ["begin", "done", "begin"]


# --- a real upgrade process killed half-way through writing a record --------------------------


def upgrade(site: Path, *args: str, fault: str | None = None) -> subprocess.CompletedProcess[str]:
    """The command in a process of its own (forked ready-imported), that a fault kills."""
    env = {k: v for k, v in os.environ.items() if k != FAULT}
    if fault:
        env[FAULT] = fault
    return prestarted.run([*args, "--site", str(site)], env, timeout=240)


def test_an_upgrade_killed_while_writing_a_record_resumes(
    tmp_path: Path, database_url: str
) -> None:
    site = build_site(tmp_path, database_url)
    try:
        killed = upgrade(site, "upgrade", "--to", "2.0.0", fault="4:done:torn")
        assert killed.returncode == -9, killed.stderr
        active = site.parent / "backups" / ACTIVE
        torn = active.read_bytes()
        assert not torn.endswith(b"\n")
        assert 4 not in read(active).done and read(active).torn == 1
        resumed = upgrade(site, "upgrade", "--resume")
        assert resumed.returncode == 0, resumed.stderr
        (history,) = (site.parent / "backups" / HISTORY).glob("*.journal")
        assert history.read_bytes().startswith(torn), "the torn bytes stay as they were"
        assert read(history).ended == "finished" and read(history).torn == 1
        assert read(history).damaged == ()
        assert fingerprint(site)["release"] == "2.0.0"
    finally:
        stairway_stop(site)


def test_an_upgrade_killed_while_writing_its_plan_starts_afresh(
    tmp_path: Path, database_url: str
) -> None:
    site = build_site(tmp_path, database_url)
    try:
        killed = upgrade(site, "upgrade", "--to", "2.0.0", fault="None:plan:torn")
        assert killed.returncode == -9, killed.stderr
        nothing = upgrade(site, "upgrade", "--resume")
        assert nothing.returncode == 2 and "no interrupted upgrade" in nothing.stderr
        again = upgrade(site, "upgrade", "--to", "2.0.0")
        assert again.returncode == 0, again.stderr
        assert fingerprint(site)["release"] == "2.0.0"
        assert len(list((site.parent / "backups" / HISTORY).glob(f"*{TORN}"))) == 1
    finally:
        stairway_stop(site)


def test_a_line_cut_short_then_damaged_reads_as_damage(tmp_path: Path) -> None:
    """Only a torn line followed by the mark a later append wrote is taken for a crash's."""
    journal = written(tmp_path)
    whole = journal.path.read_bytes()
    journal.path.write_bytes(whole[:-9])  # the `done` record cut short
    journal.record("failed", 1)
    assert (read(journal.path).torn, read(journal.path).damaged) == (1, ())
    marked = journal.path.read_bytes()
    journal.path.write_bytes(marked.replace(journal_module.CUT, b"~ edited"))
    assert read(journal.path).damaged == (3, 4)


@contextlib.contextmanager
def killed_after_backup(tmp_path: Path, database_url: str) -> Iterator[tuple[Path, Any]]:
    """A site whose upgrade to 2.0.0 was killed once its backup was recorded, and its
    fingerprint from before; its product stopped afterwards."""
    site = build_site(tmp_path, database_url)
    try:
        before = fingerprint(site)
        killed = upgrade(site, "upgrade", "--to", "2.0.0", fault="4:done")
        assert killed.returncode == -9, killed.stderr
        yield site, before
    finally:
        stairway_stop(site)


def damage_middle(site: Path) -> bytes:
    """Flip a bit in the journal's second record (a `begin`): a line a crash cannot tear."""
    active = site.parent / "backups" / ACTIVE
    lines = active.read_bytes().split(b"\n")
    lines[1] = lines[1][:-3] + bytes([lines[1][-3] ^ 1]) + lines[1][-2:]
    active.write_bytes(b"\n".join(lines))
    assert read(active).damaged == (2,)
    return active.read_bytes()


def test_a_journal_damaged_in_the_middle_is_not_resumed_and_a_rollback_puts_all_back(
    tmp_path: Path, database_url: str
) -> None:
    with killed_after_backup(tmp_path, database_url) as (site, before):
        damaged = damage_middle(site)
        refused = upgrade(site, "upgrade", "--resume")
        assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
        said = " ".join(refused.stderr.split())
        assert "damaged at line(s) 2" in said and "stairway rollback" in said
        assert (site.parent / "backups" / ACTIVE).read_bytes() == damaged, "nothing written"
        back = upgrade(site, "rollback")
        assert back.returncode == 0, back.stderr
        assert fingerprint(site) == before


def test_a_damaged_journal_that_lost_its_backup_record_leaves_the_choice_to_an_operator(
    tmp_path: Path, database_url: str
) -> None:
    with killed_after_backup(tmp_path, database_url) as (site, _):
        active = site.parent / "backups" / ACTIVE
        state = read(active)
        lines = active.read_bytes().split(b"\n")
        (at,) = [n for n, r in enumerate(state.records, 2) if "backup" in r.data]
        lines[at - 1] = lines[at - 1].replace(b'"backup"', b'"bAckup"', 1)
        active.write_bytes(b"\n".join(lines))
        left = upgrade(site, "rollback")
        said = " ".join(left.stderr.split())
        assert left.returncode == 3 and "Traceback" not in left.stderr, left.stderr
        assert "no longer names the backup" in said and "stairway restore ID" in said
