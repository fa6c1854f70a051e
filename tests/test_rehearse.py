"""Rehearsals of the example product on SQLite and of a site on PostgreSQL: the live site stays
byte for byte as it was, the scratch copy goes away (or stays with --keep), a failing upgrade is
found in rehearsal; the report opens in Debian's chromium without a console error."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import psycopg
import pytest

from cli_runner import stairway
from conftest import PG_ADMIN
from screenshots import screenshots
from stairway import operations
from stairway.database import dispose_all
from stairway.quickstart import open_demo, seed, write_site
from test_upgrade import build_site, fingerprint


def checksums(root: Path) -> dict[str, str]:
    """Every file of the site but its backups: the database, data, config files, releases."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "backups" not in path.relative_to(root).parts
    }


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    site = write_site(tmp_path / "demo")
    ctx = open_demo(site)
    operations.init(ctx, "1.0.0")
    seed(ctx, lambda _n: None)
    dispose_all()
    return site.site_file


def test_a_rehearsal_of_the_example_product_leaves_the_live_site_byte_identical(
    demo: Path,
) -> None:
    before = checksums(demo.parent)
    code, out, err = stairway("rehearse", "--to", "2.0.0", "--json", "--site", str(demo))
    assert code == 0, err
    said = orjson.loads(out)
    assert said["backup_taken"] and said["failure"] is None
    assert said["end"] == {"release": "2.0.0", "level": 8}
    assert [s["step"] for s in said["steps"]][-1] == "audit" and len(said["steps"]) == 18
    assert checksums(demo.parent) == before, "nothing live was touched"
    backups = demo.parent / "backups"
    assert not list(backups.glob("rehearsal-*")), "the scratch copy is removed"
    rates = orjson.loads((backups / "stairway-rates.json").read_bytes())
    assert "0006_backfill_display_name" in rates["changes"], "times kept for estimates"
    assert "start" not in rates["steps"], "a rehearsal never starts the product"
    code, out, err = stairway("plan", "--to", "2.0.0", "--estimate", "--json", "--site", str(demo))
    assert code == 0, err
    schema = [s for s in orjson.loads(out)["steps"] if s["kind"] == "schema"]
    assert all(s["basis"] == "measured" for s in schema)


def test_a_kept_rehearsal_stays_and_a_second_one_reuses_its_backup_when_asked(demo: Path) -> None:
    code, out, err = stairway("rehearse", "--keep", "--json", "--site", str(demo))
    assert code == 0, err
    kept = orjson.loads(out)
    assert Path(kept["scratch_dir"]).is_dir()
    scratch = kept["scratch_database"].removeprefix("sqlite:///")
    assert Path(scratch).is_file()
    assert kept["backup_taken"], "a fresh backup by default"
    reuse = ("--from-backup", kept["backup"])
    code, out, err = stairway("rehearse", *reuse, "--json", "--site", str(demo))
    assert code == 0, err
    again = orjson.loads(out)
    assert not again["backup_taken"] and again["backup"] == kept["backup"]


def scratch_databases(live_url: str) -> list[str]:
    name = live_url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{name}_rehearsal_%",)
        ).fetchall()
    return [str(r[0]) for r in rows]


def test_a_rehearsal_on_postgresql_uses_a_scratch_database_and_drops_it(
    tmp_path: Path, pg_database: str
) -> None:
    site = build_site(tmp_path, pg_database, service=False)
    before = fingerprint(site)
    report = tmp_path / "report.html"
    code, out, err = stairway(
        "rehearse", "--to", "2.0.0", "--report", str(report), "--site", str(site)
    )
    assert code == 0, err
    assert "rehearsed 1.0.0 -> 2.0.0" in out
    assert fingerprint(site) == before, "the live database, data and config files as they were"
    assert scratch_databases(pg_database) == []
    assert "rehearsal" in report.read_text() and report.with_suffix(".md").is_file()


def test_an_upgrade_that_would_fail_fails_in_rehearsal_and_nothing_live_moves(
    tmp_path: Path, pg_database: str
) -> None:
    site = build_site(tmp_path, pg_database, service=False)
    manifest = tmp_path / "catalog" / "stairway.toml"
    manifest.write_text(
        manifest.read_text() + '\n[[smoke]]\nname = "jobs"\nquery = "SELECT count(*) FROM jobs"\n'
        "expect = 99\n"
    )
    before = fingerprint(site)
    code, _out, err = stairway("rehearse", "--to", "2.0.0", "--site", str(site))
    assert code == 1 and "the rehearsal's upgrade failed: smoke-checks failed" in err
    assert "the live site was not touched" in err
    assert fingerprint(site) == before
    assert scratch_databases(pg_database) == []


def test_a_scratch_url_that_is_the_live_database_is_refused(
    tmp_path: Path, pg_database: str
) -> None:
    site = build_site(tmp_path, pg_database, service=False)
    code, _out, err = stairway(
        "rehearse", "--scratch-url", pg_database.replace("postgresql://", "postgresql+psycopg://"),
        "--site", str(site),
    )  # fmt: skip
    assert code == 2 and "the scratch database is the live one" in err


@pytest.mark.heavy  # a minute or more: started first, not left for the end
def test_the_report_opens_in_chromium_without_console_errors_and_shows_every_step(
    demo: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    report = tmp_path / "upgrade-report.html"
    code, _out, err = stairway(
        "upgrade", "--to", "2.0.0", "--report", str(report), "--site", str(demo)
    )
    try:
        assert code == 0, err
    finally:
        stairway_stop_demo(demo)
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on(
            "request",
            lambda r: errors.append(r.url) if not r.url.startswith(("file:", "data:")) else None,
        )
        page.goto(report.as_uri())
        rows = page.locator("tr.step")
        labels = [rows.nth(i).locator("td").nth(1).inner_text() for i in range(rows.count())]
        statuses = [rows.nth(i).locator("td").nth(6).inner_text() for i in range(rows.count())]
        assert page.locator("#path svg rect").count() == 3, "1.0.0, the stop 1.0.4, 2.0.0"
        assert page.locator("#durations svg rect").count() == 2 * len(labels)
        assert "required stop" in page.locator("#path").inner_text()
        page.screenshot(path=str(screenshots() / "upgrade-report.png"), full_page=True)
        browser.close()
    assert errors == []
    assert len(labels) == 18 and labels[4] == "schema 1.0.0 -> 1.0.4" and labels[-1] == "audit"
    assert set(statuses) == {"done"}
    markdown = report.with_suffix(".md").read_text()
    assert "| schema 1.0.4 -> 2.0.0 |" in markdown and "## Release notes" in markdown
    assert "1 sync runs running" in markdown, "the findings verify made before the upgrade"


def test_verify_writes_a_report_with_its_findings_and_the_planned_steps(demo: Path) -> None:
    report = demo.parent / "verify.html"
    code, _out, err = stairway(
        "verify", "--to", "2.0.0", "--report", str(report), "--site", str(demo)
    )
    assert code == 0, err
    html = report.read_text()
    assert "nothing blocks the upgrade to 2.0.0" in html and html.count('class="step"') == 18
    assert "planned" in html and "sync runs running" in html


def stairway_stop_demo(site: Path) -> None:
    from stairway import service
    from stairway.site import load_site

    service.run_command(load_site(site).service, "stop")
