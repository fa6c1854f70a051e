"""The Audit page a page at a time: newest first, Older and Newer links by position (the entry
number just above the page, never an offset), a line saying which entries of how many, and a
400 page, never a 500, for a position the log does not have."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import lxml.html
import pytest
from fastapi.testclient import TestClient
from hypothesis import assume, given
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine

from stairway import audit
from stairway.fleet import tokens
from stairway.fleet.audit_window import PAGE_SIZE, CursorRefused, window
from stairway.fleet.server import FleetConfig, create_app

ENTRIES = 2 * PAGE_SIZE + 7  # three pages, the last one short


@pytest.fixture(scope="module")
def signed_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Engine]]:
    engine = create_engine(f"sqlite:///{tmp_path_factory.mktemp('audit') / 'app.db'}")
    config = FleetConfig("people", "2.0.0", None, None, "http://testserver")
    with TestClient(create_app(engine, config)) as client:
        with engine.begin() as conn:
            admin = tokens.issue(conn, tokens.TokenKind.ADMIN, "pages")
        client.get("/ui/login")
        client.post("/ui/login", data={"token": admin, "csrf": client.cookies["stairway_signin"]})
        with engine.begin() as conn:  # after the sign-in, so the log's numbers are known here
            held = audit.count(conn)
            items = [("test.entry", {"n": n}) for n in range(held + 1, ENTRIES + 1)]
            audit.append_many(conn, items, "tester")
        yield client, engine
    engine.dispose()


def _page(client: TestClient, query: str = "") -> Any:
    answer = client.get(f"/ui/audit{query}")
    assert answer.status_code == 200, answer.text
    return lxml.html.fromstring(answer.text)


def _numbers(page: Any) -> list[int]:
    return [int(cell) for cell in page.xpath("//table//tr/td[1]/text()")]


def _link(page: Any, kind: str) -> str | None:
    found = page.xpath(f'(//nav[@class="pager"])[1]/a[@class="{kind}"]/@href')
    return str(found[0]) if found else None


def _shown(page: Any) -> str:
    return " ".join(page.xpath('(//nav[@class="pager"])[1]/span[@class="shown"]')[0].text.split())


def test_the_log_is_walked_newest_first_by_older_links_and_back_by_newer_ones(
    signed_in: tuple[TestClient, Engine],
) -> None:
    client, _ = signed_in
    seen: list[int] = []
    pages = [_page(client)]
    while (older := _link(pages[-1], "older")) is not None:
        assert re.fullmatch(r"/ui/audit\?before=\d+", older), older
        pages.append(_page(client, older.removeprefix("/ui/audit")))
    for page in pages:
        seen += _numbers(page)
    assert seen == list(range(ENTRIES, 0, -1))  # every entry once, newest first
    assert [len(_numbers(p)) for p in pages] == [PAGE_SIZE, PAGE_SIZE, ENTRIES - 2 * PAGE_SIZE]
    assert (
        _shown(pages[0])
        == f"Entries {ENTRIES} down to {ENTRIES - PAGE_SIZE + 1} of {ENTRIES}, newest first."
    )
    assert _shown(pages[-1]).startswith(f"Entries {ENTRIES - 2 * PAGE_SIZE} down to 1 of")
    assert _link(pages[0], "newer") is None
    back = _link(pages[-1], "newer")
    assert back is not None and _numbers(_page(client, back.removeprefix("/ui/audit"))) == _numbers(
        pages[1]
    )
    assert _link(pages[1], "newer") == "/ui/audit"


def test_a_page_keeps_its_entries_while_new_ones_arrive(
    signed_in: tuple[TestClient, Engine],
) -> None:
    client, engine = signed_in
    query = "?before=60"
    before = _numbers(_page(client, query))
    with engine.begin() as conn:
        audit.append(conn, "test.late", {}, "tester")
    try:
        assert _numbers(_page(client, query)) == before == list(range(59, 9, -1))
    finally:
        with engine.begin() as conn:  # the other tests count the log as it was
            conn.execute(
                audit.audit_table.delete().where(audit.audit_table.c.action == "test.late")
            )


@pytest.mark.parametrize(
    "before", ["abc", "-1", "0", "1.5", "9" * 40, str(ENTRIES + 2), "٣", " 5", "0x10"]
)
def test_a_position_the_log_does_not_have_is_a_400_page_that_says_which_it_has(
    signed_in: tuple[TestClient, Engine], before: str
) -> None:
    client, _ = signed_in
    answer = client.get("/ui/audit", params={"before": before})
    assert answer.status_code == 400, answer.text
    said = lxml.html.fromstring(answer.text).xpath('//*[@id="bad-request"]')[0].text_content()
    assert f"must be a whole number from 1 to {ENTRIES + 1}" in said
    assert "Older and Newer links" in said


@given(total=st.integers(0, 500), size=st.integers(1, 60), position=st.integers(1, 501))
def test_the_windows_down_from_any_position_cover_the_rest_once(
    total: int, size: int, position: int
) -> None:
    assume(position <= total + 1)
    shown: list[int] = []
    cursor = str(position)
    while True:
        page = window(cursor, total, size)
        shown += list(range(page.newest, page.oldest - 1, -1))
        if page.older is None:
            break
        cursor = str(page.older)
    assert shown == list(range(position - 1, 0, -1))


@given(total=st.integers(1, 500), size=st.integers(1, 60), position=st.integers(2, 501))
def test_newer_goes_back_to_a_page_that_starts_higher_or_to_the_newest(
    total: int, size: int, position: int
) -> None:
    assume(position <= total)
    page = window(str(position), total, size)
    assert page.newer is not None
    above = window(str(page.newer) if page.newer else "", total, size)
    assert above.oldest <= page.newest + 1 and above.newest > page.newest


@given(
    text=st.one_of(st.text(max_size=25), st.integers(-5, 1100).map(str)),
    total=st.integers(0, 1000),
)
def test_a_cursor_is_taken_exactly_when_it_is_a_position_of_the_log(text: str, total: int) -> None:
    position = re.fullmatch(r"[0-9]+", text) and 1 <= int(text) <= total + 1
    try:
        page = window(text, total)
    except CursorRefused as err:
        assert text and not position
        assert f"before={text!r}" in err.message and "/ui/audit" in err.hint
    else:
        assert not text or position
        assert page.below == (int(text) if text else total + 1)


def test_the_page_says_which_entries_it_shows_of_how_many() -> None:
    assert window("", 120).describe() == "Entries 120 down to 71 of 120, newest first."
    assert window("2", 120).describe() == "Entry 1 of 120."
    assert window("1", 120).describe() == "No entries here (the log has 120)."
    assert window("", 0).describe() == "No entries here (the log has 0)."
