"""The web UI in Debian's chromium (Playwright): sign in, set the policy, Run now, and watch the
agents reach the server's version. A screenshot is saved to ``artifacts/screenshots``."""

from __future__ import annotations

import os
import re
import shutil
import signal
from pathlib import Path

import pytest

from fleet_harness import fleet_site, make_build, wait_until

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"


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


def test_the_agents_page_changes_the_policy_runs_now_and_shows_the_upgrade(
    tmp_path: Path, sqlite_database: str
) -> None:
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    with fleet_site(tmp_path, sqlite_database) as fleet:
        old = make_build(fleet.root, "1.0.0")
        fleet.publish(make_build(fleet.root, "2.0.0"), "2.0.0")
        fleet.start_server()
        for name in ("relay-a", "relay-b"):
            fleet.start_agent(name, old)
        wait_until(lambda: fleet.connected() == {"relay-a", "relay-b"}, 60, "both agents")
        with sync_playwright() as driver:
            browser = driver.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-background-networking"]
            )
            page = browser.new_page()
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
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shot = SCREENSHOTS / "fleet-agents.png"
            page.screenshot(path=str(shot), full_page=True)
            page.click("text=Audit")
            expect(page.locator("text=The hash chain is whole")).to_be_visible()
            expect(page.locator("td", has_text="agent.upgrade_policy")).to_have_count(1)
            browser.close()
        assert shot.stat().st_size > 10_000
        assert errors == [], errors


def test_the_agents_page_fits_a_phone_and_says_when_it_lost_contact(
    tmp_path: Path, sqlite_database: str
) -> None:
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    from stairway.database import engine_for
    from stairway.fleet.tables import agents_table

    with fleet_site(tmp_path, sqlite_database) as fleet:
        fleet.start_server()
        row = {"agent_id": "relay-a", "version": "1.0.0", "state": "online", "connected": True}
        with engine_for(sqlite_database).begin() as conn:
            conn.execute(agents_table.insert().values(row | {"message": "", "enrolled": "2024"}))
        with sync_playwright() as driver:
            browser = driver.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-background-networking"]
            )
            page = browser.new_page(viewport={"width": 390, "height": 800})
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
            browser.close()
