"""Rendering a report: HTML from a Jinja2 template with inline CSS and SVG, and Markdown."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup

from stairway.estimate.predict import say_duration
from stairway.files import write_atomic
from stairway.report.model import ROLLBACK, Document

_ENV = Environment(
    loader=PackageLoader("stairway.report", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters["duration"] = say_duration
# CommonMark with tables; raw HTML in the notes is shown as text, never passed through, and
# markdown-it refuses javascript:, vbscript: and data: links of its own accord
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")
NOTES_LEVEL = 3  # the notes' own headings sit under the report's <h1> and its sections' <h2>

STAIR_W, STAIR_H = 120, 34
BAR_W, BAR_ROW = 520, 22


@dataclass(frozen=True)
class Bar:
    """One step's bar in the timing chart: widths in pixels for the actual and predicted time."""

    label: str
    y: int
    actual: float  # width in pixels
    predicted: float
    status: str
    text: str


def write_report(document: Document, path: Path) -> list[Path]:
    """``path`` as HTML (or Markdown for ``.md``) and its twin beside it; the paths written."""
    html, markdown = path.with_suffix(".html"), path.with_suffix(".md")
    if path.suffix == ".md":
        html = path.with_suffix(".html")
    write_atomic(html, render_html(document).encode())
    write_atomic(markdown, render_markdown(document).encode())
    return [html, markdown]


def render_html(document: Document) -> str:
    """The report as one HTML page, with inline CSS and SVG drawings."""
    return _ENV.get_template("report.html").render(
        doc=document,
        stairs=_stairs(document),
        stairs_size=(STAIR_W * len(document.stairs) + 40, STAIR_H * len(document.stairs) + 40),
        bars=_bars(document),
        bars_height=BAR_ROW * len(document.steps) + 30,
        bar_width=BAR_W,
        notes=notes_html(document.notes),
    )


def notes_html(markdown: str) -> Markup:
    """Release notes in Markdown as HTML: any HTML they hold is escaped, their headings start
    at ``<h3>`` so that they sit under the report's own, and their tables' headers are
    column headers, like the report's."""
    tokens = _MARKDOWN.parse(markdown)
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(6, int(token.tag[1:]) + NOTES_LEVEL - 1)}"
        elif token.type == "th_open":
            token.attrSet("scope", "col")
    # safe to mark: markdown-it escaped any HTML the notes held (the "html" option is off)
    return Markup(_MARKDOWN.renderer.render(tokens, _MARKDOWN.options, {}))


def _stairs(document: Document) -> list[dict[str, object]]:
    """One tread per version, rising to the right; a required stop is marked on its tread."""
    count = len(document.stairs)
    return [
        {
            "x": 20 + index * STAIR_W,
            "y": 20 + (count - 1 - index) * STAIR_H,
            "height": (index + 1) * STAIR_H,
            "version": stair.version,
            "role": stair.role,
        }
        for index, stair in enumerate(document.stairs)
    ]


def _bars(document: Document) -> list[Bar]:
    longest = max([max(r.actual or 0.0, r.predicted or 0.0) for r in document.steps] + [1e-9])
    scale = BAR_W / longest
    return [
        Bar(
            row.label,
            10 + index * BAR_ROW,
            (row.actual or 0.0) * scale,
            (row.predicted or 0.0) * scale,
            row.status,
            say_duration(row.actual if row.actual is not None else row.predicted),
        )
        for index, row in enumerate(document.steps)
    ]


def render_markdown(document: Document) -> str:
    """The report as Markdown: the path, the steps table and the findings."""
    lines = [f"# {document.title}", "", f"**{document.outcome}** — {document.generated}", ""]
    path = " → ".join(
        f"{s.version} (required stop)" if s.role == "stop" else s.version for s in document.stairs
    )
    lines += [f"Path: {path}", ""]
    if document.backup:
        lines += [f"{document.backup_lead} `{document.backup}`{document.backup_detail}", ""]
    total, down = document.timing.describe()
    said = "measured" if document.timing.measured else "predicted"
    lines += [f"Total time ({said}): {total}. Downtime: {down}.", ""]
    lines += ["## Steps", "", "| step | phase | lock | predicted | actual | status |"]
    lines += ["|---|---|---|---|---|---|"]
    for row in document.steps:
        actual = say_duration(row.actual) if row.actual is not None else ""
        predicted = "" if row.kind == ROLLBACK else say_duration(row.predicted)
        lines.append(
            f"| {row.label} | {row.phase} | {row.lock} | {predicted} | {actual} | {row.status} |"
        )
    lines += ["", "## Findings", ""]
    for severity, found in document.findings.items():
        for finding in found:
            blocks = " (blocks)" if finding.blocking else ""
            hint = f" — {finding.hint}" if finding.hint else ""
            lines.append(f"- **{severity}{blocks}** {finding.topic}: {finding.message}{hint}")
    if not any(document.findings.values()):
        lines.append("none")
    if document.end_state:
        lines += ["", "## End state", "", document.end_state]
    lines += ["", "## Release notes", "", document.notes]
    return "\n".join(lines) + "\n"
