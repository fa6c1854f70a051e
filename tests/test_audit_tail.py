"""Which entries of an audit tail a site takes (pure): exactly those after where it stands in
that log when the tail chains on from there, else a refusal naming both hashes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stairway import audit
from stairway.audit import Head
from stairway.audit_tail import START, Row, TailRefused, parse_position, take, taking
from stairway.errors import TransferError


def chain(count: int, salt: str = "") -> list[Row]:
    rows, previous = [], audit.GENESIS
    for number in range(1, count + 1):
        data = f'{{"n":{number},"salt":"{salt}"}}'
        digest = audit._hash(previous, number, "2026-01-01", "ops", "secret.set", data)
        rows.append(Row(number, "2026-01-01", "ops", "secret.set", data, previous, digest))
        previous = digest
    return rows


def position(rows: list[Row], index: int) -> Head:
    """Where a site stands after the first ``index`` entries."""
    return START if index == 0 else Head(rows[index - 1].id, rows[index - 1].hash)


@given(st.integers(0, 30), st.data())
def test_a_tail_that_chains_on_gives_exactly_the_entries_not_held(
    count: int, data: st.DataObject
) -> None:
    rows = chain(count)
    start = data.draw(st.integers(0, count), label="tail after")
    held = data.draw(st.integers(start, count), label="held")
    taken = take(position(rows, start), rows[start:], position(rows, held))
    assert taken == rows[held:]


@given(st.integers(1, 30), st.data())
def test_a_gap_before_the_tail_is_refused_with_both_hashes(count: int, data: st.DataObject) -> None:
    rows = chain(count)
    held = data.draw(st.integers(0, count - 1), label="held")
    start = data.draw(st.integers(held + 1, count), label="tail after")
    with pytest.raises(TailRefused) as refused:
        take(position(rows, start), rows[start:], position(rows, held))
    assert refused.value.expected == position(rows, held).hash
    assert refused.value.got == rows[start - 1].hash
    assert f"expected previous hash {refused.value.expected}" in refused.value.message


@given(st.integers(1, 30), st.data())
def test_a_fork_where_the_site_stands_is_refused(count: int, data: st.DataObject) -> None:
    ours, theirs = chain(count, "ours"), chain(count, "theirs")
    held = data.draw(st.integers(1, count), label="held")
    start = data.draw(st.integers(0, held), label="tail after")
    with pytest.raises(TailRefused) as refused:
        take(position(theirs, start), theirs[start:], position(ours, held))
    assert refused.value.expected == ours[held - 1].hash
    assert refused.value.got == theirs[held - 1].hash


def test_a_tail_that_ends_before_where_the_site_stands_gives_nothing() -> None:
    rows = chain(6)
    assert take(START, rows[:3], position(rows, 6)) == []


@pytest.mark.parametrize(
    "text", ["", "12", "x:" + "a" * 64, "3:" + "A" * 64, "3:abc", "-1:" + "a" * 64]
)
def test_a_position_not_seq_colon_hash_is_refused_with_a_hint(text: str) -> None:
    with pytest.raises(TransferError) as refused:
        parse_position(text)
    assert refused.value.hint


@given(st.integers(0, 10**9), st.text("0123456789abcdef", min_size=64, max_size=64))
def test_a_position_reads_back_as_written(seq: int, digest: str) -> None:
    assert parse_position(f"{seq}:{digest}") == Head(seq, digest)


@given(st.integers(1, 30), st.data())
def test_a_refused_tail_gives_no_entry_before_the_refusal(count: int, data: st.DataObject) -> None:
    ours, theirs = chain(count, "ours"), chain(count, "theirs")
    held = data.draw(st.integers(1, count), label="held")
    start = data.draw(st.integers(0, held), label="tail after")
    given_out: list[Row] = []
    with pytest.raises(TailRefused):
        for row in taking(position(theirs, start), iter(theirs[start:]), position(ours, held)):
            given_out.append(row)  # what an import would already have committed
    assert given_out == []
