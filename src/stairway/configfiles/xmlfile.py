"""XML config files edited by XPath with lxml, keeping the operator's text around the edits.

lxml keeps comments, attribute order and whitespace inside the root element. What lies before
and after the root (the declaration with its quoting, a doctype, top-level comments and the
blank lines between them) is copied byte for byte from the original, because lxml would
re-serialise it in its own style.
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

from stairway.configfiles.keys import Edit
from stairway.configfiles.migration import ConfigMigration, ConfigOp
from stairway.configfiles.problems import Unreadable

_COMMENT = rb"<!--(?:(?!-->).)*-->"
_INSTRUCTION = rb"<\?(?:(?!\?>).)*\?>"
_PROLOG_ITEM = re.compile(
    rb"\s+|" + _INSTRUCTION + rb"|" + _COMMENT + rb"|<!DOCTYPE(?:[^\[>]|\[[^\]]*\])*>",
    re.DOTALL | re.IGNORECASE,
)
_EPILOG = re.compile(rb"(?:\s|" + _COMMENT + rb"|" + _INSTRUCTION + rb")*\Z", re.DOTALL)


def _parser() -> etree.XMLParser:
    # No entity expansion, no network, no DTD loading: a config file is data, not a program.
    return etree.XMLParser(
        remove_blank_text=False,
        remove_comments=False,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
    )


class XmlFile:
    """One parsed XML file; ``dump`` returns bytes in the file's own encoding."""

    def __init__(self, raw: bytes) -> None:
        try:
            self.root = etree.fromstring(raw, _parser())
        except etree.XMLSyntaxError as err:
            raise Unreadable(err.msg, err.lineno or None) from None
        self.encoding = self.root.getroottree().docinfo.encoding or "UTF-8"
        self._prolog, self._epilog = _frame(raw)

    def dump(self) -> bytes:
        """The document in its own encoding, with the text around the root as it was."""
        if self._prolog is None or self._epilog is None:  # unusual framing: let lxml write it
            whole = etree.tostring(
                self.root.getroottree(), encoding=self.encoding, xml_declaration=True
            )
            assert isinstance(whole, bytes)  # an encoding was named: lxml returns bytes
            return whole
        body = etree.tostring(self.root, encoding=self.encoding, xml_declaration=False)
        assert isinstance(body, bytes)
        return self._prolog + body + self._epilog

    def select(self, migration: ConfigMigration) -> list[Any]:
        """The elements, attributes or values the migration's XPath selects."""
        found = self.root.xpath(migration.xpath, namespaces=dict(migration.namespaces))
        return found if isinstance(found, list) else []

    def apply(self, migration: ConfigMigration) -> Edit:
        """Carry out the migration on every node its XPath selects.

        NOTHING when none was selected or each already has the value.
        """
        hits = self.select(migration)
        if migration.op == ConfigOp.REMOVE:
            return _remove_all(hits)
        if migration.op == ConfigOp.SET_ATTRIBUTE:
            return _set_attribute(hits, migration.attribute, str(migration.value))
        return _set_text(hits, str(migration.value))


def _frame(raw: bytes) -> tuple[bytes | None, bytes | None]:
    """The bytes before the root element and after it, or None where they cannot be told."""
    position = 0
    while (match := _PROLOG_ITEM.match(raw, position)) and match.end() > position:
        position = match.end()
    if not raw.startswith(b"<", position):
        return None, None
    end = _EPILOG.search(raw, position + 1)
    if end is None or not raw[: end.start()].endswith(b">"):
        return None, None
    return raw[:position], raw[end.start() :]


def _remove_all(hits: list[Any]) -> Edit:
    removed = False
    for hit in hits:
        if isinstance(hit, etree._Element) and hit.getparent() is not None:
            _remove_element(hit)
            removed = True
        elif getattr(hit, "is_attribute", False):
            owner = hit.getparent()
            del owner.attrib[hit.attrname]
            removed = True
    return Edit.APPLIED if removed else Edit.NOTHING


def _remove_element(element: etree._Element) -> None:
    """Remove ``element`` and the line it stood on; text of mixed content is kept."""
    tail = element.tail or ""
    if tail.strip():  # mixed content: the text after the element stays
        _set_text_before(element, _text_before(element) + tail)
    elif element.getnext() is None:  # the last child: its tail indents the closing tag
        _set_text_before(element, tail)
    parent = element.getparent()
    assert parent is not None
    parent.remove(element)


def _text_before(element: etree._Element) -> str:
    previous = element.getprevious()
    parent = element.getparent()
    holder = previous.tail if previous is not None else parent.text if parent is not None else ""
    return holder or ""


def _set_text_before(element: etree._Element, text: str) -> None:
    previous = element.getprevious()
    if previous is not None:
        previous.tail = text
    elif (parent := element.getparent()) is not None:
        parent.text = text


def _set_attribute(hits: list[Any], name: str, value: str) -> Edit:
    elements = [h for h in hits if isinstance(h, etree._Element)]
    changed = [e for e in elements if e.get(name) != value]
    for element in changed:
        element.set(name, value)
    return Edit.APPLIED if changed else Edit.NOTHING


def _set_text(hits: list[Any], value: str) -> Edit:
    elements = [h for h in hits if isinstance(h, etree._Element)]
    changed = [e for e in elements if (e.text or "") != value]
    for element in changed:
        element.text = value
    return Edit.APPLIED if changed else Edit.NOTHING


def check_xpath(xpath: str, namespaces: dict[str, str]) -> None:
    """Raise ValueError when ``xpath`` does not compile or uses a prefix it does not declare."""
    try:
        etree.XPath(xpath, namespaces=namespaces)(etree.Element("probe"))
    except (etree.XPathSyntaxError, etree.XPathEvalError) as err:
        raise ValueError(f"xpath {xpath!r}: {err}") from None
