"""A long audit tail is exported, checked and imported in bounded memory (tracemalloc peaks
for tails four times apart stay alike), and a move interrupted between two batches of its
import keeps the batches committed and takes up after them on the next run."""

from __future__ import annotations

import io
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from unittest.mock import patch

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from cli_runner import stairway
from stairway import context, faults
from stairway.database import dispose_all
from stairway.operations import audit_move
from stairway.transfer import format, tail
from stairway.transfer.trust import read_trusted
from test_audit_anchor import site_at, verify
from test_audit_carry import logged
from test_audit_move import Pair, as_in_source, fill, imported, source_entries


def sqlite_pair(root: Path, count: int) -> Pair:
    """A source whose log holds ``count`` entries and an empty target, both on SQLite."""
    (root / "s").mkdir(parents=True)
    (root / "t").mkdir()
    source_url = f"sqlite:///{root / 's.db'}"
    source = site_at(root / "s", source_url)
    target = site_at(root / "t", f"sqlite:///{root / 't.db'}")
    fill(source_url, count)
    key = root / "source.pub"
    assert stairway("audit", "key", "--out", str(key), "--site", str(source))[0] == 0
    dispose_all()
    return Pair(source, target, source_url, key)


def peak(work: Callable[[], object]) -> int:
    """The most memory ``work`` held at once, in bytes, over what was held before it."""
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def move_peak(root: Path, count: int) -> int:
    """The larger peak of exporting a tail of ``count`` entries and of importing it."""
    pair = sqlite_pair(root, count)
    source = context.open_context(pair.source, None)
    target = context.open_context(pair.target, None)
    key = read_trusted(pair.key)
    path = root / "tail.zst"
    exported = peak(lambda: audit_move.export_tail(source, path))
    done: list[tail.TailImport] = []
    taken = peak(lambda: done.append(audit_move.import_tail(target, path, key)))
    assert done[0].taken == count  # the whole tail went in: the peaks are of the real work
    dispose_all()
    return max(exported, taken)


def test_memory_does_not_grow_with_the_length_of_the_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pages and batches ten times smaller than shipped, so that a few thousand entries span
    # as many of them as a few tens of thousands would (bench `transfer` measures 200,000)
    monkeypatch.setattr(audit_move, "PAGE", 200)
    monkeypatch.setattr(tail, "BATCH", 500)
    move_peak(tmp_path / "warm", 50)  # caches of first use are not the tail's
    small = move_peak(tmp_path / "small", 2_000)
    large = move_peak(tmp_path / "large", 8_000)
    # held whole, four times the entries took about four times the memory (3 kB or so each)
    assert large < small * 1.5, f"2,000 entries peaked at {small} bytes, 8,000 at {large}"


def test_an_interrupted_move_keeps_its_committed_batches_and_resumes_after_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = sqlite_pair(tmp_path, 300)
    monkeypatch.setattr(tail, "BATCH", 100)
    monkeypatch.setattr(faults, "_reached", faults.Counter())
    monkeypatch.setenv(faults.FAULT, "before:audit-import-commit#3")
    monkeypatch.setenv(faults.ACTION, "eio")  # the third batch fails before its commit
    move = ("audit", "move", "--to-site", str(pair.target), "--site", str(pair.source))
    code, out, err = stairway(*move)
    dispose_all()
    assert code != 0, out + err
    assert len(imported(pair.target)) == 200  # two batches committed, the third not
    monkeypatch.delenv(faults.FAULT)
    code, out, err = stairway(*move)
    dispose_all()
    assert code == 0 and out.startswith("100 audit entries imported"), out + err
    assert [as_in_source(e) for e in imported(pair.target)] == source_entries(pair.source)
    said = [
        (e.data["from"], e.data["to"]) for e in logged(pair.target) if e.action == "audit.import"
    ]
    assert said == [(1, 100), (101, 200), (201, 300)]
    assert verify(pair.target)[0] == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary().map(lambda b: b.replace(b"\n", b"")), max_size=12), st.integers(1, 9))
def test_lines_read_back_whole_whatever_the_block_size(lines: list[bytes], block: int) -> None:
    text = b"\n".join(lines)
    stream = io.BytesIO(zstandard.ZstdCompressor().compress(text))
    with patch.object(format, "BLOCK", block):
        found = [line for _, line in format._lines(stream)]
    expected = text.split(b"\n")
    if expected[-1] == b"":
        expected.pop()  # a stream ending in a newline (or empty) has no line after it
    assert found == expected
