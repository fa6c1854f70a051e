"""Every text colour of the report's and the web UI's stylesheets reaches the WCAG AA contrast
of 4.5:1 on the background it is shown on, read from the templates themselves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import stairway

TEMPLATES = Path(stairway.__file__).parent
# each stylesheet's template, and the rule whose background its text sits on unless a rule
# says otherwise: the report's sections, the web UI's tables and panels
STYLESHEETS = {"report/templates/report.html": "section", "fleet/templates/base.html": "table"}
AA = 4.5
RULE = re.compile(r"([^{};]+)\{([^{}]*)\}")
COLOUR = re.compile(r"(?<![-\w])color:\s*(#[0-9a-fA-F]{3}\b|#[0-9a-fA-F]{6}\b)")
BACKGROUND = re.compile(r"background(?:-color)?:\s*(#[0-9a-fA-F]{3}\b|#[0-9a-fA-F]{6}\b)")


def luminance(colour: str) -> float:
    """The WCAG relative luminance of ``#rgb`` or ``#rrggbb``."""
    digits = colour.lstrip("#")
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    channels = [int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(foreground: str, background: str) -> float:
    """The WCAG contrast ratio of two colours, from 1 to 21."""
    light, dark = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def rules(css: str) -> list[tuple[list[str], str]]:
    """Each innermost rule's selectors and declarations (those inside ``@media`` included)."""
    found = []
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.DOTALL)
    for head, body in RULE.findall(css):
        head = head.split("{")[-1]  # "@media print {" before the first rule of a block
        found.append(([s.strip() for s in head.split(",") if s.strip()], body))
    return found


def text_colours(css: str, surface: str) -> list[tuple[str, str, str]]:
    """Each selector with a text colour, the colour and the background it is shown on: the
    rule's own; the background of the rule its selector's first part names (``header a`` on
    ``header``); or the ``surface`` rule's."""
    backgrounds: dict[str, str] = {}
    for selectors, body in rules(css):
        if found := BACKGROUND.search(body):
            backgrounds |= {selector: found.group(1) for selector in selectors}
    pairs = []
    for selectors, body in rules(css):
        colour, own = COLOUR.search(body), BACKGROUND.search(body)
        if colour is None:
            continue
        for selector in selectors:
            enclosing = backgrounds.get(selector.split()[0]) if " " in selector else None
            shown_on = own.group(1) if own else enclosing or backgrounds[surface]
            pairs.append((selector, colour.group(1), shown_on))
    return pairs


def test_the_contrast_ratio_is_wcag_s() -> None:
    assert contrast("#000", "#fff") == pytest.approx(21.0)
    assert contrast("#fff", "#fff") == pytest.approx(1.0)
    assert contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)
    assert contrast("#8a93a3", "#fff") < AA < contrast("#5c6577", "#fff")


def test_a_colour_is_judged_on_the_background_it_is_shown_on() -> None:
    css = "section { background: #fff; } header { background: #000; color: #fff; }\n"
    css += "header a { color: #cfe1ff; } /* a, b */ .hint { color: #777; }\n"
    css += "@media print { .x { color: #000; } }"
    assert text_colours(css, "section") == [
        ("header", "#fff", "#000"),
        ("header a", "#cfe1ff", "#000"),
        (".hint", "#777", "#fff"),
        (".x", "#000", "#fff"),
    ]


@pytest.mark.parametrize("template", sorted(STYLESHEETS))
def test_every_text_colour_reaches_4_5_to_1(template: str) -> None:
    html = (TEMPLATES / template).read_text("utf-8")
    css = "\n".join(re.findall(r"<style>(.*?)</style>", html, re.DOTALL))
    pairs = text_colours(css, STYLESHEETS[template])
    assert len(pairs) > 5, "the stylesheet was read"
    low = [
        f"{selector}: {colour} on {background} is {contrast(colour, background):.2f}:1"
        for selector, colour, background in pairs
        if contrast(colour, background) < AA
    ]
    assert low == []
