"""The web UI's pages as HTML, in process (FastAPI's TestClient on SQLite): what each form said
and in which box, titles, phone layout, empty tables, time zones and per-agent actions."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import lxml.html
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, delete, insert

from stairway import audit, task_runs
from stairway.fleet import store, tokens
from stairway.fleet.policy import Mode
from stairway.fleet.server import FleetConfig, create_app
from stairway.fleet.tables import agents_table
from stairway.tasks import Task, TaskKind, TaskProgress

PAGES = ("/ui/", "/ui/agents", "/ui/audit")


@dataclass
class UI:
    """A browser signed in to the web UI: its client, the session's CSRF token, the database."""

    client: TestClient
    csrf: str
    engine: Engine

    def html(self, path: str) -> Any:
        answer = self.client.get(path)
        assert answer.status_code == 200, answer.text
        return lxml.html.fromstring(answer.text)

    def post(self, path: str, **form: str) -> Any:
        answer = self.client.post(path, data=form | {"csrf": self.csrf})
        assert answer.status_code == 200, answer.text
        return lxml.html.fromstring(answer.text)

    def agents(self, *rows: dict[str, Any]) -> None:
        """The agents table holds exactly ``rows`` (over an online agent on 1.0.0)."""
        base = {"state": "online", "connected": True, "version": "1.0.0", "message": ""}
        with self.engine.begin() as conn:
            conn.execute(delete(agents_table))
            for row in rows:
                conn.execute(insert(agents_table).values(base | {"enrolled": "2024"} | row))

    def policy(self, **values: Any) -> None:
        with self.engine.begin() as conn:
            store.write_policy(conn, replace(store.read_policy(conn), **values))


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UI]:
    where: Path = tmp_path_factory.mktemp("ui")
    engine = create_engine(f"sqlite:///{where / 'app.db'}")
    config = FleetConfig("people", "2.0.0", None, None, "http://testserver")
    with TestClient(create_app(engine, config)) as client:
        with engine.begin() as conn:
            admin = tokens.issue(conn, tokens.TokenKind.ADMIN, "pages")
        client.get("/ui/login")
        nonce = client.cookies["stairway_signin"]
        client.post("/ui/login", data={"token": admin, "csrf": nonce})
        page = client.get("/ui/agents").text
        found = re.search(r'name="csrf" value="([^"]+)"', page)
        assert found, page
        yield UI(client, found.group(1), engine)
    engine.dispose()


def _text(element: Any) -> str:
    return " ".join(element.text_content().split())


def _alert(page: Any) -> str:
    alerts = page.xpath('//*[@role="alert"]')
    assert len(alerts) == 1, lxml.html.tostring(page)
    assert not page.xpath('//*[contains(@class, "said")]'), "an error is not said in the ok box"
    return _text(alerts[0])


def test_an_upgrade_without_a_published_build_is_an_error_that_says_how_to_publish(
    ui: UI,
) -> None:
    ui.agents({"agent_id": "relay-a"})
    said = _alert(ui.post("/ui/agents/relay-a/upgrade"))
    assert "no agent build is published for 2.0.0" in said
    assert "stairway agent publish agent-2.0.0.pyz --version 2.0.0 --key release.key" in said


def test_a_policy_out_of_range_is_an_error_that_names_the_setting(ui: UI) -> None:
    form = {"mode": "auto", "percent": "0", "interval": "60", "max_failures": "0"}
    said = _alert(ui.post("/ui/policy", **form))
    assert "not saved: percent" in said and "change Percent per tick" in said
    saved = ui.post("/ui/policy", **form | {"percent": "10", "mode": "manual"})
    assert _text(saved.get_element_by_id("said")) == "policy saved"
    assert saved.get_element_by_id("said").get("class") == "said"
    assert not saved.xpath('//*[@role="alert"]')


def test_a_halt_is_shown_as_an_alert_that_says_how_to_resume(ui: UI) -> None:
    halted = "canary agent relay-a did not come back on 2.0.0"
    ui.policy(mode=Mode.AUTO, rollout_target="2.0.0", halted=halted)
    try:
        page = ui.html("/ui/agents")
        halted = page.get_element_by_id("halted")
        assert halted.get("role") == "alert"
        assert "did not come back" in _text(halted) and "Save policy" in _text(halted)
        ran = ui.post("/ui/run")
        said = ran.get_element_by_id("said")
        assert said.get("role") == "alert" and "rollout halted" in _text(said)
    finally:
        ui.policy(mode=Mode.MANUAL, halted=None)


def test_a_notice_whose_kind_was_changed_in_the_link_is_not_shown(ui: UI) -> None:
    answer = ui.client.post(
        "/ui/agents/nobody/upgrade", data={"csrf": ui.csrf}, follow_redirects=False
    )
    link = answer.headers["location"]
    assert "kind=error" in link
    assert "no agent build" in ui.client.get(link).text
    assert "no agent build" not in ui.client.get(link.replace("kind=error", "kind=ok")).text


def _refused(ui: UI) -> Any:
    answer = ui.client.post("/ui/run", data={"csrf": "forged"})
    assert answer.status_code == 403
    return lxml.html.fromstring(answer.text)


def _login(ui: UI) -> Any:
    return lxml.html.fromstring(ui.client.get("/ui/login").text)


def test_every_page_has_a_plain_text_title(ui: UI) -> None:
    pages = [ui.html(path) for path in PAGES] + [_login(ui), _refused(ui)]
    titles = [page.xpath("//title")[0] for page in pages]
    for title in titles:
        assert len(title) == 0 and "<" not in title.text, lxml.html.tostring(title)
    names = [title.text.split(" · ")[0] for title in titles]
    assert names == ["Dashboard", "Agents", "Audit", "Sign in", "Refused"]
    assert all(title.text.endswith(" · people 2.0.0") for title in titles)


def test_every_page_fits_a_phone_and_its_tables_scroll_in_their_box(ui: UI) -> None:
    ui.agents({"agent_id": "relay-a"})
    for page in [ui.html(path) for path in PAGES] + [_login(ui), _refused(ui)]:
        viewport = page.xpath('//meta[@name="viewport"]/@content')
        assert viewport == ["width=device-width, initial-scale=1"]
        for table in page.xpath("//table"):
            assert "scroll" in table.getparent().get("class", "").split(), table.get("id")
    style = ui.html("/ui/").xpath("//style")[0].text
    assert re.search(r"\.scroll \{[^}]*overflow-x: auto", style)


def test_empty_tables_say_what_to_do(ui: UI) -> None:
    ui.agents()
    rows = ui.html("/ui/agents").xpath('//table[@id="agents-table"]//tr[@class="empty"]')
    assert len(rows) == 1 and "stairway tokens create --kind enroll" in _text(rows[0])
    dashboard = ui.html("/ui/")
    assert len(dashboard.xpath('//tr[@class="empty"]')) == 2
    assert "No background migration is running" in _text(dashboard)


def test_times_are_shown_with_their_zone(ui: UI) -> None:
    ui.agents({"agent_id": "relay-a", "last_seen": "2024-05-01T12:30:05.123+02:00"})
    seen = ui.html("/ui/agents").xpath('//td[@class="seen"]')
    assert [_text(cell) for cell in seen] == ["2024-05-01 10:30:05 UTC"]
    with ui.engine.begin() as conn:  # an entry of its own: the other tests may run elsewhere
        audit.ensure_table(conn)
        audit.append(conn, "site.maintenance", {"on": True}, at="2024-05-01T12:30:05+02:00")
    stamps = ui.html("/ui/audit").xpath("//table//tr/td[2]")
    assert stamps and all(_text(cell).endswith(" UTC") for cell in stamps)


def test_upgrade_is_offered_only_to_an_agent_behind_and_asks_first(ui: UI) -> None:
    ui.agents({"agent_id": "relay-a"}, {"agent_id": "relay-b", "version": "2.0.0"})
    table = ui.html("/ui/agents").get_element_by_id("agents-table")
    rows = table.xpath(".//tr[@data-agent]")
    offered = {row.get("data-agent"): row.xpath('.//td[@class="action"]//a') for row in rows}
    assert [_text(a) for a in offered["relay-a"]] == ["Upgrade to 2.0.0…"]
    assert offered["relay-b"] == [] and not table.xpath(".//form")
    ask = ui.html(offered["relay-a"][0].get("href"))
    assert "It runs 1.0.0" in _text(ask.get_element_by_id("confirm"))
    assert ask.xpath('//form[@id="confirm"]/@method') == ["post"]
    assert "nothing to upgrade" in _text(ui.html("/ui/agents/relay-b/upgrade"))
    refused = _alert(ui.post("/ui/agents/relay-b/upgrade"))
    assert "relay-b runs 2.0.0: nothing to upgrade" in refused


def test_a_held_agent_is_flagged_with_its_reason_and_offered_only_the_upgrade(ui: UI) -> None:
    reason = "held: agent release 1.0.0 is 1 minor series behind the server's 2.0.0"
    ui.agents({"agent_id": "relay-h", "state": "held", "message": reason})
    table = ui.html("/ui/agents").get_element_by_id("agents-table")
    (row,) = table.xpath('.//tr[@data-agent="relay-h"]')
    assert "held outside the window of 2.0.0" in _text(row) and reason in _text(row)
    assert row.xpath('.//td[contains(@class, "state-held")]')
    assert [_text(a) for a in row.xpath('.//td[@class="action"]//a')] == ["Upgrade to 2.0.0…"]


def test_the_agents_page_has_a_live_banner_for_a_refresh_that_failed(ui: UI) -> None:
    page = ui.html("/ui/agents")
    banner = page.get_element_by_id("contact")
    assert banner.get("aria-live") == "polite" and banner.get("hidden") is not None
    script = page.xpath("//main//script")[0].text
    assert "lost contact — data as of" in script and '"signed out"' in script
    assert "replaceWith" in script and "innerHTML" not in script, "rows are updated in place"


def test_a_staged_rollout_says_how_many_agents_its_wave_holds_as_agents_enroll(ui: UI) -> None:
    ui.agents()
    ui.policy(mode=Mode.STAGED, percent=20, canary=True, rollout_target="2.0.0", rollout_size=0)
    try:
        empty = _text(ui.html("/ui/agents").get_element_by_id("wave"))
        assert "no agent to upgrade yet" in empty
        ui.agents(*({"agent_id": f"relay-{n}"} for n in range(5)))
        said = _text(ui.html("/ui/agents").get_element_by_id("wave"))
        assert "5 agent(s) in it; the current wave holds 1 agent(s)" in said
        assert "canary group first" in said
    finally:
        ui.policy(mode=Mode.MANUAL, canary=False, rollout_target=None, rollout_size=None)
        ui.agents()


def test_the_dashboard_shows_background_tasks_with_progress_and_the_retry_of_a_failed_one(
    ui: UI,
) -> None:
    reindex = Task("orders-index", "2.0.0", TaskKind.REINDEX_INDEX, True, "orders_customer")
    command = Task("warm", "2.0.0", TaskKind.COMMAND, True, argv=("warm",))
    task_runs.begun(ui.engine, reindex)
    task_runs.advanced(ui.engine, reindex, TaskProgress(reindex.name, "building index", 10, 0.5))
    task_runs.begun(ui.engine, command)
    task_runs.ended(ui.engine, command, "warm exited with 1")
    try:
        rows = ui.html("/ui/").xpath('//table[@id="tasks"]//tr[td]')
        shown = {_text(row.xpath("td")[0]): [_text(td) for td in row.xpath("td")] for row in rows}
    finally:
        with ui.engine.begin() as conn:
            conn.execute(delete(task_runs.runs_table))
    assert shown["orders-index"][2:5:2] == ["running: building index", "10 s"]
    assert shown["orders-index"][3].endswith("50.0%")
    assert shown["warm"][2] == "failed"
    assert "retry with stairway tasks run warm --release 2.0.0" in shown["warm"][6]
