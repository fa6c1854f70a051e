"""Every page of the web UI and every kind of HTML report, in Debian's chromium at a laptop's
1280x800 and a phone's 390x844: axe-core finds no serious or critical violation, a phone never
scrolls sideways, and a full-page screenshot of each is kept in ``$STAIRWAY_ARTIFACTS/screenshots``
(``artifacts/screenshots`` at the repository root unless said) for CI to keep.

One browser, one control plane and a signed-in context per size serve the whole module. The
reports are those of real runs on the example product (see real_reports.py), made once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fleet_harness import Fleet, fleet_site
from real_reports import example_site, write_reports
from screenshots import ROOT, screenshots
from stairway import audit, maintenance
from stairway.database import engine_for
from stairway.fleet.tables import agents_table
from test_fleet_ui import CHROMIUM, _require_chromium

SIZES = {"1280": (1280, 800), "390": (390, 844)}
BLOCKING = {"serious", "critical"}
LONG_ID = "relay-eu-west-frankfurt-datacenter-rack-07-unit-42-secondary"
LONG_MESSAGE = "health check failed: /healthz answered 503 after 30 s; kept 1.0.0 and pinned 2.0.0"


def axe_script() -> Path:
    """axe-core as PyPI's axe-playwright-python ships it; skipped (failed in CI) without it."""
    try:
        import axe_playwright_python
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("axe-playwright-python is a dev dependency: CI needs it")
        pytest.skip("axe-playwright-python is not installed here")
    return Path(axe_playwright_python.__file__).parent / "axe.min.js"


@dataclass
class Stage:
    """What the module shares: the browser, the control plane, the reports written, and a
    browser context per size signed in once (signing in is a page load of its own)."""

    browser: Any
    fleet: Fleet
    reports: Path
    signed: dict[tuple[int, int], Any] = field(default_factory=dict)

    def context(self, viewport: tuple[int, int], signed_in: bool) -> Any:
        """A context at ``viewport``: a new one signed out, else the size's signed-in one."""
        size = {"width": viewport[0], "height": viewport[1]}
        if not signed_in:
            return self.browser.new_context(viewport=size)
        if viewport not in self.signed:
            self.signed[viewport] = self.browser.new_context(viewport=size)
            _sign_in(self, self.signed[viewport].new_page())
        return self.signed[viewport]


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    _require_chromium()
    axe_script()
    root = tmp_path_factory.mktemp("screens")
    # The reports' runs mostly wait for the example service to answer: they go on while the
    # control plane and the browser start.
    with example_site(root / "demo") as demo, ThreadPoolExecutor(1) as beside:
        reports = beside.submit(write_reports, demo, root / "reports")
        with fleet_site(root, f"sqlite:///{root / 'fleet.db'}") as fleet, _browser() as browser:
            _fill(fleet)
            fleet.start_server()
            stage = Stage(browser, fleet, reports.result())
            yield stage
            for context in stage.signed.values():
                context.close()


@contextmanager
def _browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-background-networking"]
        )
        yield browser
        browser.close()


def _fill(fleet: Fleet) -> None:
    """Agents in every state worth drawing, one with a long id and message; audit entries;
    maintenance on, so every page shows its banner."""
    engine = engine_for(f"sqlite:///{fleet.root / 'fleet.db'}")
    states = [("relay-a", "1.0.0", "online"), (LONG_ID, "1.0.0", "failed")]
    states += [("relay-c", "2.0.0", "upgrading"), ("relay-d", "3.0.0", "ahead")]
    with engine.begin() as conn:
        for agent_id, version, state in states:
            row = {"agent_id": agent_id, "version": version, "state": state, "connected": True}
            message = LONG_MESSAGE if state == "failed" else ""
            conn.execute(agents_table.insert().values(row | {"message": message, "enrolled": "x"}))
        audit.append(conn, "agent.upgrade", {"agent": LONG_ID, "why": LONG_MESSAGE}, "admin:ops")
    maintenance.switch_on(engine, "upgrading the database server to a new minor release")
    engine.dispose()


def _sign_in(stage: Stage, page: Any) -> None:
    page.goto(f"{stage.fleet.url}/ui/login")
    page.fill("input[name=token]", stage.fleet.admin)
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/")
    page.close()


def _refused(stage: Stage, page: Any) -> None:
    """The 403 page: a form sent with a CSRF token that is not this session's."""
    page.goto(f"{stage.fleet.url}/ui/")
    with page.expect_navigation():
        page.evaluate(
            """() => { const form = document.querySelector('form.signout');
                       form.querySelector('[name=csrf]').value = 'not-this-sessions';
                       form.action = form.action.replace('/logout', '/run'); form.submit(); }"""
        )


def _not_saved(stage: Stage, page: Any) -> None:
    """The Agents page saying in its error box why a policy was not saved."""
    page.goto(f"{stage.fleet.url}/ui/agents")
    with page.expect_navigation():
        page.evaluate(
            "() => { document.getElementById('percent').value = '500';"
            " document.getElementById('policy').submit(); }"
        )
    page.wait_for_selector("#said")


def _visit(path: str) -> Callable[[Stage, Any], None]:
    def go(stage: Stage, page: Any) -> None:
        page.goto(f"{stage.fleet.url}{path}")

    return go


def _report(kind: str) -> Callable[[Stage, Any], None]:
    def go(stage: Stage, page: Any) -> None:
        page.goto((stage.reports / f"{kind}.html").as_uri())

    return go


SCREENS: dict[str, Callable[[Stage, Any], None]] = {
    "login": _visit("/ui/login"),
    "login-failed": _visit("/ui/login?failed=true"),
    "dashboard": _visit("/ui/"),
    "agents": _visit("/ui/agents"),
    "agents-not-saved": _not_saved,
    "confirm-upgrade": _visit("/ui/agents/relay-a/upgrade"),
    "confirm-unknown-agent": _visit("/ui/agents/nobody/upgrade"),
    "audit": _visit("/ui/audit"),
    "refused": _refused,
    "bad_request": _visit("/ui/audit?before=nowhere"),
    "report-upgrade": _report("upgrade"),
    "report-rolled-back": _report("rolled-back"),
    "report-rehearsal": _report("rehearsal"),
    "report-verify": _report("verify"),
}


def test_every_page_of_the_ui_is_in_this_module() -> None:
    from stairway.fleet.web import TITLES

    visited = {name.split("-")[0] for name in SCREENS}
    pages = {template.removesuffix(".html") for template in TITLES}
    assert pages <= visited, f"pages no screen here visits: {pages - visited}"


@pytest.mark.heavy  # two dozen pages, each loaded, checked by axe-core and photographed
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("screen", SCREENS)
def test_the_screen_is_accessible_fits_and_is_photographed(
    stage: Stage, screen: str, size: str
) -> None:
    width, height = SIZES[size]
    signed_in = not screen.startswith(("login", "report"))
    context = stage.context((width, height), signed_in)
    page = context.new_page()
    try:
        SCREENS[screen](stage, page)
        page.add_script_tag(path=str(axe_script()))
        found = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        shot = screenshots() / f"{screen}-{size}.png"
        page.screenshot(path=str(shot), full_page=True)
        scrolled = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    finally:
        page.close()
        if not signed_in:
            context.close()
    bad = [v for v in found["violations"] if v["impact"] in BLOCKING]
    assert bad == [], "\n".join(_said(v) for v in bad)
    assert scrolled <= 0, f"{screen} scrolls {scrolled} px sideways at {width} px"
    assert shot.stat().st_size > 5_000


def _said(violation: dict[str, Any]) -> str:
    targets = "; ".join(" ".join(node["target"]) for node in violation["nodes"])
    return f"{violation['id']} ({violation['impact']}): {violation['help']} at {targets}"


def test_screenshots_go_where_ci_collects_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STAIRWAY_ARTIFACTS", str(tmp_path / "kept"))
    assert screenshots() == tmp_path / "kept" / "screenshots"
    assert screenshots().is_dir(), "made for the first screenshot"
    monkeypatch.delenv("STAIRWAY_ARTIFACTS")
    assert screenshots() == ROOT / "artifacts" / "screenshots"
