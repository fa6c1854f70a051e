"""The HTML report's layout and legibility, from a document made here: its charts scale to
their box and print with their headings, its tables scroll in theirs and have column headers,
the totals come first and the release notes are Markdown shown without their HTML. Its
colours' contrast is tested with the web UI's, in test_contrast."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import lxml.html

from stairway.report.model import Document, Stair, StepRow, timing
from stairway.report.render import render_html, render_markdown
from stairway.verify import Finding, FindingSeverity


def _document(**values: Any) -> Document:
    steps = (
        StepRow("schema 1.0 → 1.1", "schema", "expand", "none", 2.0, 2.5, "done"),
        StepRow("stop the service", "stop", "", "", 1.0, 1.0, "done"),
        StepRow("objects 1.1", "objects", "", "", 30.0, None, "planned"),
        StepRow("start the service", "start", "", "", 1.0, None, "planned"),
    )
    finding = Finding("schema", FindingSeverity.WARNING, "a column is wide", hint="narrow it")
    stairs = (Stair("1.0", "current"), Stair("1.1", "stop"), Stair("2.0", "target"))
    document = Document(
        "rehearsal", "people", "1.0", "2.0", "rehearsed", True, stairs, steps,
        {FindingSeverity.WARNING: (finding,)}, None, "notes",
    )  # fmt: skip
    return replace(document, **values)


def _page(**values: Any) -> Any:
    return lxml.html.fromstring(render_html(_document(**values)))


def test_the_charts_scale_to_their_box_and_the_tables_scroll_in_theirs() -> None:
    page = _page()
    assert page.xpath('//meta[@name="viewport"]/@content') == [
        "width=device-width, initial-scale=1"
    ]
    for chart in page.xpath("//svg"):
        assert chart.get("width") == "100%" and chart.get("height") is None
        assert re.fullmatch(r"0 0 \d+ \d+", chart.get("viewbox") or chart.get("viewBox"))
    for table in page.xpath("//table"):
        assert "scroll" in table.getparent().get("class", "").split()


def _css(page: Any) -> str:
    return "\n".join(style.text for style in page.xpath("//style"))


def _row(kind: str, actual: float | None, status: str = "done", predicted: float = 1.0) -> StepRow:
    return StepRow(kind, kind, "", "", predicted, actual, status)


def test_the_totals_add_the_steps_and_the_downtime_runs_from_the_stop_through_the_start() -> None:
    ran = [
        _row("backup", 5.0), _row("maintenance-on", 0.5), _row("stop", 1.0),
        _row("schema", 10.0), _row("start", 2.0), _row("health", 3.0), _row("audit", 0.5),
    ]  # fmt: skip
    assert timing(ran).total == 22.0 and timing(ran).downtime == 13.0
    assert timing(ran).measured and not timing(ran).down_at_end
    planned = [replace(row, actual=None, status="planned", predicted=2.0) for row in ran]
    assert (timing(planned).total, timing(planned).downtime) == (14.0, 6.0)
    assert not timing(planned).measured
    unknown = [*planned[:3], replace(planned[3], predicted=None), *planned[4:]]
    assert timing(unknown).describe() == ("unknown", "unknown")
    rolling = [_row("backup", 5.0), _row("instance", 8.0), _row("instance", 7.0)]
    assert timing(rolling).describe() == ("20.0 s", "none: the product kept serving")
    failed = [*ran[:3], _row("schema", 4.0, "failed"), _row("start", None, "not run")]
    total, down = timing(failed).describe()
    assert total == "10.5 s" and down.startswith("at least 5.0 s: the run ended before")


def test_the_totals_come_first() -> None:
    page = _page()
    sections = [s.get("id") for s in page.xpath("//main/section")]
    assert sections.index("summary") < sections.index("steps")
    assert _text(page.get_element_by_id("total-time")) == "3.5 s"
    assert _text(page.get_element_by_id("downtime")).startswith("at least 1.0 s")
    markdown = render_markdown(_document())
    assert "Total time (measured): 3.5 s. Downtime: at least 1.0 s" in markdown
    assert markdown.index("Total time") < markdown.index("## Steps")


def test_the_release_notes_are_markdown_rendered_without_their_html() -> None:
    notes = (
        "# people 1.0 → 2.0\n\n## Before you upgrade\n\n- run `sync --all` first\n"
        "- <script>alert(1)</script> <b>bold</b>\n\n[look](javascript:alert(2))\n"
    )
    page = _page(notes=notes)
    box = page.get_element_by_id("notes")
    assert [h.text for h in box.xpath(".//h3")] == ["people 1.0 → 2.0"]
    assert [h.text for h in box.xpath(".//h4")] == ["Before you upgrade"]
    assert box.xpath(".//li/code")[0].text == "sync --all"
    assert not page.xpath("//script | //section[@id='notes']//b | //a[@href]")
    assert "<script>alert(1)</script>" in _text(box)


def test_every_table_has_column_headers() -> None:
    page = _page(notes="| option | default |\n|---|---|\n| batch | 500 |\n")
    tables = page.xpath("//table")
    assert len(tables) == 3
    for table in tables:
        headers = table.xpath("./thead/tr/th")
        assert headers and all(th.get("scope") == "col" for th in headers)
        assert not table.xpath(".//th[not(@scope)]")
    findings = page.get_element_by_id("findings")
    assert [_text(th) for th in findings.xpath(".//th")][:2] == ["severity", "topic"]
    empty = _page(findings={})
    assert not empty.get_element_by_id("findings").xpath(".//table")
    assert "No findings." in _text(empty.get_element_by_id("findings"))


def test_each_chart_is_kept_with_its_heading_and_prints_with_its_legend() -> None:
    page = _page()
    for chart in page.xpath("//svg"):
        figure = chart.getparent()
        assert figure.tag == "figure" and "chart" in figure.get("class").split()
        assert figure.xpath("./h2")
    css = _css(page)
    assert re.search(r"figure\.chart \{[^}]*break-inside: avoid", css)
    printed = css[css.index("@media print") :]
    assert re.search(r"section \{[^}]*break-inside: avoid", printed)
    assert re.search(r"\.swatch[^{]*\{[^}]*print-color-adjust: exact", printed)


def _text(element: Any) -> str:
    return " ".join(element.text_content().split())
