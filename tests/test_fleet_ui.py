"""The web UI in Debian's chromium (Playwright): sign in, set the policy, Run now, and watch the
agents reach the server's version; lose contact with the server; be signed out while the Agents
page is open. A screenshot is saved where screenshots.py says."""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from fleet_harness import fleet_site, make_build, wait_until
from screenshots import screenshots

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM = "/usr/bin/chromium"


def _require_chromium() -> None:
    if shutil.which(CHROMIUM) and _playwright():
        return
    if os.environ.get("CI") == "true":
        pytest.fail(
            "Debian's chromium and PyPI's playwright are needed in CI (.ci/run installs them)"
        )
    pytest.skip("chromium or playwright is not installed here")


def _playwright() -> bool:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One chromium for the module's tests; each test opens its own pages."""
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        launched = driver.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-background-networking"]
        )
        yield launched
        launched.close()


def test_the_agents_page_changes_the_policy_runs_now_and_shows_the_upgrade(
    tmp_path: Path, sqlite_database: str, browser: Browser
) -> None:
    from playwright.sync_api import expect

    with fleet_site(tmp_path, sqlite_database) as fleet:
        old = make_build(fleet.root, "1.0.0")
        fleet.publish(make_build(fleet.root, "2.0.0"), "2.0.0")
        fleet.start_server()
        for name in ("relay-a", "relay-b"):
            fleet.start_agent(name, old)
        wait_until(lambda: fleet.connected() == {"relay-a", "relay-b"}, 60, "both agents")
        with browser.new_context() as context:
            page = context.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{fleet.url}/ui/agents")
            page.fill("input[name=token]", fleet.admin)
            page.click("button[type=submit]")
            expect(page.locator("#server-version")).to_have_text("2.0.0")
            expect(page.locator("h2", has_text="Background migrations")).to_be_visible()
            page.click("text=Agents")
            rows = page.locator("#agents-table tr[data-agent]")
            expect(rows).to_have_count(2, timeout=30_000)
            states = page.locator("#agents-table td.state")
            expect(states).to_have_text(["online", "online"], timeout=30_000)
            page.select_option("#mode", "auto")
            page.fill("#interval", "3600")  # only Run now sends the upgrade
            page.click("#save")
            expect(page.locator("#said")).to_have_text("policy saved")
            page.click("#run-now")
            expect(page.locator("#said")).to_contain_text("2 agent(s) sent the upgrade")
            versions = page.locator("#agents-table td.version")
            expect(versions).to_have_text(["2.0.0", "2.0.0"], timeout=60_000)
            expect(states).to_have_text(["online", "online"])
            shot = screenshots() / "fleet-agents.png"
            page.screenshot(path=str(shot), full_page=True)
            page.click("text=Audit")
            expect(page.locator("text=The hash chain is whole")).to_be_visible()
            expect(page.locator("td", has_text="agent.upgrade_policy")).to_have_count(1)
        assert shot.stat().st_size > 10_000
        assert errors == [], errors


def test_the_agents_page_fits_a_phone_and_says_when_it_lost_contact(
    tmp_path: Path, sqlite_database: str, browser: Browser
) -> None:
    from playwright.sync_api import expect

    from stairway.database import engine_for
    from stairway.fleet.tables import agents_table

    with fleet_site(tmp_path, sqlite_database) as fleet:
        fleet.start_server()
        row = {"agent_id": "relay-a", "version": "1.0.0", "state": "online", "connected": True}
        with engine_for(sqlite_database).begin() as conn:
            conn.execute(agents_table.insert().values(row | {"message": "", "enrolled": "2024"}))
        with browser.new_context(viewport={"width": 390, "height": 800}) as context:
            page = context.new_page()
            page.goto(f"{fleet.url}/ui/login")
            page.fill("input[name=token]", fleet.admin)
            page.click("button[type=submit]")
            for path in ("/ui/", "/ui/audit", "/ui/agents"):
                page.goto(f"{fleet.url}{path}")
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= 390, (path, width)
            link = page.locator("#agents-table a", has_text="Upgrade to 2.0.0")
            link.focus()
            page.wait_for_timeout(2500)  # refreshed once, in place: the link keeps its focus
            assert page.evaluate("document.activeElement.textContent").startswith("Upgrade")
            assert fleet.server is not None
            fleet.server.send_signal(signal.SIGTERM)
            fleet.server.wait(timeout=15)
            banner = page.locator("#contact")
            expect(banner).to_contain_text("lost contact — data as of", timeout=5_000)
            expect(banner).to_have_attribute("aria-live", "polite")
            expect(page.locator("#agents")).to_have_class(re.compile(r"\bstale\b"))
            expect(page.locator("#agents-table tr[data-agent]")).to_have_count(1)


def test_the_agents_page_says_signed_out_stops_refreshing_and_offers_to_sign_in_again(
    tmp_path: Path, sqlite_database: str, browser: Browser
) -> None:
    from playwright.sync_api import Request, expect

    with fleet_site(tmp_path, sqlite_database) as fleet:
        fleet.start_server()
        with browser.new_context() as context:
            page = context.new_page()
            page.goto(f"{fleet.url}/ui/login")
            page.fill("input[name=token]", fleet.admin)
            page.click("button[type=submit]")
            page.goto(f"{fleet.url}/ui/agents")
            refreshes: list[float] = []

            def counted(request: Request) -> None:
                if request.url.endswith("/ui/agents/table"):
                    refreshes.append(time.monotonic())

            page.on("request", counted)
            with page.expect_request("**/ui/agents/table"):
                pass  # the table refreshes itself: the count is watching
            banner = page.locator("#contact")
            expect(banner).to_be_hidden()
            fleet.cli("tokens", "revoke", fleet.admin.split(".")[0].split("_")[2])
            revoked = time.monotonic()
            expect(banner).to_contain_text("signed out", timeout=5_000)
            assert time.monotonic() - revoked < 5
            expect(banner).to_have_attribute("aria-live", "polite")
            expect(page.locator("#agents")).to_have_class(re.compile(r"\bstale\b"))
            after = len(refreshes)
            page.wait_for_timeout(4_500)  # two refreshes' worth: none may come
            assert len(refreshes) == after, "the page went on asking after it was signed out"
            again = banner.get_by_role("link", name="sign in again")
            again.click()
            expect(page).to_have_url(f"{fleet.url}/ui/login")
            page.fill("input[name=token]", fleet.token("admin"))
            page.click("button[type=submit]")
            expect(page.locator("#sign-out")).to_be_visible()
