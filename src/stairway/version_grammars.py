"""How a product writes its versions: the grammars a catalog may choose (``[product] versions``).
Pure: no I/O.

Each grammar turns a spelling into a ``Parsed`` value: an order key (compared only with keys of
the same grammar), the leading numbers (``release``) and whether it is a pre-release. PEP 440
itself is left to ``packaging``; ``versions.Version`` dispatches on the grammar's name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import total_ordering
from typing import Literal, get_args

GrammarName = Literal["pep440", "semver", "maven", "calver"]
GRAMMARS: tuple[GrammarName, ...] = get_args(GrammarName)
EXAMPLES: dict[str, str] = {
    "pep440": "2.0.0 or 2.1.0rc1",
    "semver": "8.2.1 or 8.2.1-rc.1",
    "maven": "4.4 or 4.4-SNAPSHOT",
    "calver": "2024.10 or 2024.10.1",
}


@dataclass(frozen=True)
class Parsed:
    """A version as its grammar reads it.

    Attributes:
        key: Orders versions of the grammar: equal keys are the same version.
        release: The leading numbers (major, minor, micro ...), as written.
        prerelease: Whether it comes before the release it leads to (rc, SNAPSHOT ...).
    """

    key: object
    release: tuple[int, ...]
    prerelease: bool


def describe(grammar: str) -> str:
    """The grammar's name and an example, as hints say it."""
    return f"{grammar} versions, e.g. {EXAMPLES[grammar]}"


# --- SemVer 2.0.0 -------------------------------------------------------------------------

_NUMBER = r"0|[1-9]\d*"
_PRE_ID = r"0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*"
_SEMVER = re.compile(
    rf"({_NUMBER})\.({_NUMBER})\.({_NUMBER})"
    rf"(?:-((?:{_PRE_ID})(?:\.(?:{_PRE_ID}))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)


def parse_semver(text: str) -> Parsed:
    """SemVer 2.0.0: ``MAJOR.MINOR.PATCH[-pre.release][+build]``; build metadata is not part
    of the key (§10, §11), so ``1.0.0+a`` and ``1.0.0+b`` are the same version."""
    found = _SEMVER.fullmatch(text)
    if found is None:
        raise ValueError(f"{text!r} is not a SemVer 2.0.0 version")
    numbers = (int(found[1]), int(found[2]), int(found[3]))
    pre = found[4]
    # a release sorts after each of its pre-releases: (1,) > (0, ...)
    tail = (0, tuple(_pre_field(f) for f in pre.split("."))) if pre else (1,)
    return Parsed((*numbers, tail), numbers, pre is not None)


def _pre_field(field: str) -> tuple[int, int, str]:
    """§11.4: numeric fields numerically and before alphanumeric ones, those in ASCII order."""
    return (0, int(field), "") if field.isdigit() else (1, 0, field)


# --- CalVer YYYY.MM[.MICRO] ----------------------------------------------------------------

_CALVER = re.compile(r"([1-9]\d{3})\.(0?[1-9]|1[0-2])(?:\.(0|[1-9]\d*))?")


def parse_calver(text: str) -> Parsed:
    """CalVer ``YYYY.MM`` or ``YYYY.MM.MICRO`` (month written ``10`` or ``09``); compared as
    numbers, a missing micro being 0."""
    found = _CALVER.fullmatch(text)
    if found is None:
        raise ValueError(f"{text!r} is not a CalVer YYYY.MM[.MICRO] version")
    numbers = (int(found[1]), int(found[2]), int(found[3] or 0))
    return Parsed(numbers, numbers, False)


# --- Maven ComparableVersion ---------------------------------------------------------------

_MAVEN = re.compile(r"\d[0-9A-Za-z]*(?:[.-][0-9A-Za-z]+)*")
_QUALIFIERS = ("alpha", "beta", "milestone", "rc", "snapshot", "", "sp")
_ALIASES = {"ga": "", "final": "", "release": "", "cr": "rc"}
_SHORTHANDS = {"a": "alpha", "b": "beta", "m": "milestone"}
_RELEASE_RANK = "5"  # the rank of "": a release
MavenItem = int | str | list["MavenItem"]


def parse_maven(text: str) -> Parsed:
    """Maven's ComparableVersion: items split at ``.``, ``-`` and digit/letter changes, a ``-``
    or a change opening a nested list; trailing zeros and release words dropped, so
    ``1.0 == 1`` and ``1.0-ga == 1``."""
    if _MAVEN.fullmatch(text) is None:
        raise ValueError(f"{text!r} is not a Maven version")
    items = _maven_items(text.lower())
    leading = re.match(r"\d+(?:\.\d+)*", text)
    release = tuple(int(n) for n in leading[0].split(".")) if leading else ()
    return Parsed(MavenKey(items), release, _maven_prerelease(items))


def _maven_items(text: str) -> list[MavenItem]:
    """The nested item lists of ``text`` (lower case), normalised as Maven does."""
    top: list[MavenItem] = []
    stack, current = [top], top
    tokens = re.findall(r"[.-]|\d+|[a-z]+", text)
    for i, token in enumerate(tokens):
        before = tokens[i - 1] if i else "."
        # a dash, or a change between digits and letters inside one part, opens a nested list
        if token == "-" or (before not in ".-" and token not in ".-"):
            nested: list[MavenItem] = []
            current.append(nested)
            stack.append(current := nested)
        if token not in ".-":
            current.append(_item(token, tokens[i + 1] if i + 1 < len(tokens) else ""))
    for items in reversed(stack):
        _normalise(items)
    return top


def _item(token: str, after: str) -> MavenItem:
    """A number, or a qualifier: ``a1``, ``b1``, ``m1`` are alpha 1, beta 1, milestone 1."""
    if token.isdigit():
        return int(token)
    if len(token) == 1 and after.isdigit():
        return _SHORTHANDS.get(token, token)
    return _ALIASES.get(token, token)


def _normalise(items: list[MavenItem]) -> None:
    """Drop trailing null items (0, "", empty lists), looking past trailing lists."""
    for i in range(len(items) - 1, -1, -1):
        if _is_null(items[i]):
            del items[i]
        elif not isinstance(items[i], list):
            break


def _is_null(item: MavenItem) -> bool:
    return item == 0 or item == "" or item == []


def _maven_prerelease(items: list[MavenItem]) -> bool:
    """Below its release: the first qualifier found ranks under ``""`` (alpha .. snapshot)."""
    for item in items:
        if isinstance(item, list):
            return _compare_item(item, None) < 0
    return False


def _rank(qualifier: str) -> str:
    """Known qualifiers by their place; unknown ones after all of them, lexically."""
    if qualifier in _QUALIFIERS:
        return str(_QUALIFIERS.index(qualifier))
    return f"{len(_QUALIFIERS)}-{qualifier}"


def _compare_item(left: MavenItem | None, right: MavenItem | None) -> int:
    """ComparableVersion's ``Item.compareTo``: -1, 0 or 1; None is a missing item."""
    if left is None:
        return -_compare_item(right, None) if right is not None else 0
    return _COMPARE[type(left)](left, right)


def _compare_int(left: MavenItem, right: MavenItem | None) -> int:
    assert isinstance(left, int)
    if right is None:
        return int(left != 0)
    if isinstance(right, int):
        return (left > right) - (left < right)
    return 1  # a number is newer than a qualifier or a nested list


def _compare_str(left: MavenItem, right: MavenItem | None) -> int:
    assert isinstance(left, str)
    if right is None:
        return _cmp(_rank(left), _RELEASE_RANK)
    if isinstance(right, str):
        return _cmp(_rank(left), _rank(right))
    return -1  # a qualifier is older than a number or a nested list


def _compare_list(left: MavenItem, right: MavenItem | None) -> int:
    assert isinstance(left, list)
    if right is None:
        return next((c for c in (_compare_item(i, None) for i in left) if c), 0)
    if isinstance(right, int):
        return -1
    if isinstance(right, str):
        return 1
    for i in range(max(len(left), len(right))):
        mine = left[i] if i < len(left) else None
        theirs = right[i] if i < len(right) else None
        if found := _compare_item(mine, theirs):
            return found
    return 0


def _cmp(left: str, right: str) -> int:
    return (left > right) - (left < right)


_COMPARE: dict[type, Callable[[MavenItem, MavenItem | None], int]] = {
    int: _compare_int,
    str: _compare_str,
    list: _compare_list,
}


@total_ordering
class MavenKey:
    """A Maven version's items, ordered by ComparableVersion's comparison."""

    def __init__(self, items: list[MavenItem]) -> None:
        self.items = items

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MavenKey) and _compare_list(self.items, other.items) == 0

    def __lt__(self, other: MavenKey) -> bool:
        return _compare_list(self.items, other.items) < 0

    def __hash__(self) -> int:
        return hash(repr(self.items))


PARSERS: dict[str, Callable[[str], Parsed]] = {
    "semver": parse_semver,
    "maven": parse_maven,
    "calver": parse_calver,
}
