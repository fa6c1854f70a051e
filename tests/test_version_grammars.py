"""Version grammars: each orders versions as its ecosystem publishes, prints them as written,
and never compares with another grammar. Pure: no database, no files."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from stairway.errors import PlanError
from stairway.version_grammars import GrammarName
from stairway.versions import Version

SEMVER_SPEC = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
]
MAVEN_PUBLISHED = ["1-alpha-1", "1-beta-1", "1-milestone-1", "1-rc-1", "1-SNAPSHOT", "1", "1-sp-1"]


def strictly_rising(texts: list[str], grammar: GrammarName) -> bool:
    versions = [Version(t, grammar) for t in texts]
    return all(a < b and b > a and a != b for a, b in itertools.pairwise(versions))


def test_semver_published_precedence() -> None:
    assert strictly_rising(SEMVER_SPEC, "semver")


def test_maven_published_order_and_trailing_zeros() -> None:
    assert strictly_rising(MAVEN_PUBLISHED, "maven")
    assert Version("1.0", "maven") == Version("1", "maven") == Version("1.0.0", "maven")
    assert hash(Version("1.0", "maven")) == hash(Version("1", "maven"))


@pytest.mark.parametrize(
    ("low", "high"),
    [("1-a1", "1-b1"), ("1-b1", "1-m1"), ("1-m1", "1-cr1"), ("1-sp", "1-zeta"), ("1-abc", "1-abd")],
)
def test_maven_shorthands_and_unknown_qualifiers(low: str, high: str) -> None:
    assert Version(low, "maven") < Version(high, "maven")


@pytest.mark.parametrize(
    ("one", "other"),
    [("1-a1", "1-alpha-1"), ("1-cr-1", "1-rc-1"), ("1-ga", "1"), ("1.0-final", "1")],
)
def test_maven_aliases(one: str, other: str) -> None:
    assert Version(one, "maven") == Version(other, "maven")


def test_semver_build_metadata_is_not_precedence() -> None:
    assert Version("1.0.0+build.1", "semver") == Version("1.0.0+build.2", "semver")
    assert str(Version("1.0.0+build.1", "semver")) == "1.0.0+build.1"


def test_calver_orders_numerically_with_series_year_month() -> None:
    assert strictly_rising(["2024.9", "2024.10", "2024.10.1", "2024.10.12", "2025.01"], "calver")
    assert Version("2024.09", "calver") == Version("2024.9.0", "calver")
    assert Version("2024.10.1", "calver").series == (2024, 10)


@pytest.mark.parametrize(
    ("text", "grammar", "series", "pre"),
    [
        ("8.2.1-rc.1", "semver", (8, 2), True),
        ("4.4-SNAPSHOT", "maven", (4, 4), True),
        ("4.4.2", "maven", (4, 4), False),
        ("2024.10", "calver", (2024, 10), False),
        ("2.1.0rc1", "pep440", (2, 1), True),
    ],
)
def test_series_and_prerelease(
    text: str, grammar: GrammarName, series: tuple[int, int], pre: bool
) -> None:
    version = Version(text, grammar)
    assert (version.series, version.is_prerelease, str(version)) == (series, pre, text)


@pytest.mark.parametrize(
    ("text", "grammar"),
    [
        ("1.0", "semver"),
        ("01.0.0", "semver"),
        ("1.0.0-", "semver"),
        ("1.0.0-01", "semver"),
        ("4.4-", "maven"),
        ("-4", "maven"),
        ("4..4", "maven"),
        ("2024.13", "calver"),
        ("24.10", "calver"),
        ("2024.10-rc1", "calver"),
    ],
)
def test_not_a_version_names_the_grammar(text: str, grammar: GrammarName) -> None:
    with pytest.raises(PlanError, match=grammar) as caught:
        Version.parse(text, grammar)
    assert grammar in caught.value.hint and "e.g." in caught.value.hint


def test_grammars_never_compare() -> None:
    with pytest.raises(PlanError, match="different grammars"):
        _ = Version("1.0.0", "semver") < Version("1.0.0")
    with pytest.raises(PlanError, match="different grammars"):
        _ = Version("2024.10", "calver") == Version("2024.10", "maven")


# --- properties against references written here, apart from the grammars ----------------------

numbers = st.integers(min_value=0, max_value=30)
alnum = st.text("abcxyzABZ-", min_size=1, max_size=4).filter(lambda s: not s.isdigit())
pre_field = st.one_of(numbers.map(str), alnum, st.builds("{}{}".format, numbers, alnum))


@st.composite
def semvers(draw: st.DrawFn) -> str:
    core = ".".join(str(draw(numbers)) for _ in range(3))
    pre = draw(st.lists(pre_field, max_size=3))
    build = draw(st.sampled_from(["", "+b1", "+exp.sha.5114f85"]))
    return core + ("-" + ".".join(pre) if pre else "") + build


def semver_reference(text: str) -> tuple[object, ...]:
    """§11 read straight off the spec: numbers, then release above pre-release, fields pairwise."""
    core, _, pre = text.split("+")[0].partition("-")
    fields = [(0, int(f), "") if f.isdigit() else (1, 0, f) for f in pre.split(".")] if pre else []
    return (*map(int, core.split(".")), not pre, fields)


@given(semvers(), semvers())
def test_semver_matches_the_reference(a: str, b: str) -> None:
    x, y = Version(a, "semver"), Version(b, "semver")
    assert (x < y) == (semver_reference(a) < semver_reference(b))
    assert (x == y) == (semver_reference(a) == semver_reference(b))
    assert str(x) == a


QUALIFIER_RANKS = {"alpha": 0, "beta": 1, "milestone": 2, "rc": 3, "SNAPSHOT": 4, "sp": 6}


@st.composite
def mavens(draw: st.DrawFn) -> str:
    parts = [str(draw(numbers)) for _ in range(draw(st.integers(1, 3)))]
    qualifier = draw(st.sampled_from([None, *QUALIFIER_RANKS]))
    if qualifier is None:
        return ".".join(parts)
    return ".".join(parts) + f"-{qualifier}-{draw(st.integers(1, 9))}"


def maven_reference(text: str) -> tuple[object, ...]:
    """Numbers without trailing zeros, then the qualifier's rank (a release is 5), its number."""
    core, _, rest = text.partition("-")
    digits = [int(n) for n in core.split(".")]
    while digits and digits[-1] == 0:
        digits.pop()
    word, _, number = rest.partition("-")
    return (tuple(digits), QUALIFIER_RANKS.get(word, 5), int(number or 0))


@given(mavens(), mavens())
def test_maven_matches_the_reference(a: str, b: str) -> None:
    # a shorter core with a qualifier meets a longer one's number: keep cores equally long
    assume(a.partition("-")[0].count(".") == b.partition("-")[0].count("."))
    x, y = Version(a, "maven"), Version(b, "maven")
    assert (x < y) == (maven_reference(a) < maven_reference(b))
    assert (x == y) == (maven_reference(a) == maven_reference(b))
    assert str(x) == a


@st.composite
def calvers(draw: st.DrawFn) -> str:
    month = draw(st.integers(1, 12))
    written = f"{month:02d}" if draw(st.booleans()) else str(month)
    micro = draw(st.one_of(st.none(), numbers))
    return f"{draw(st.integers(1990, 2100))}.{written}" + ("" if micro is None else f".{micro}")


@given(calvers(), calvers())
def test_calver_matches_the_reference(a: str, b: str) -> None:
    reference = [(*map(int, t.split(".")), 0)[:3] for t in (a, b)]
    x, y = Version(a, "calver"), Version(b, "calver")
    assert (x < y) == (reference[0] < reference[1]) and (x == y) == (reference[0] == reference[1])
    assert str(x) == a


def grammar_and_three() -> st.SearchStrategy[tuple[GrammarName, list[str]]]:
    drawn: list[st.SearchStrategy[tuple[GrammarName, list[str]]]] = [
        st.tuples(st.just(name), st.lists(strategy, min_size=3, max_size=3))
        for name, strategy in (
            ("semver", semvers()),
            ("maven", mavens()),
            ("calver", calvers()),
        )
    ]
    return st.one_of(drawn)


maven_free = st.from_regex(r"[1-9][0-9]?([.-]([0-9]{1,2}|[a-z]{1,3})){0,4}", fullmatch=True)


@given(grammar_and_three())
def test_total_order(case: tuple[GrammarName, list[str]]) -> None:
    grammar, texts = case
    a, b, c = (Version(t, grammar) for t in texts)
    assert (a <= b) or (b <= a)
    if a <= b and b <= a:
        assert a == b and hash(a) == hash(b)
    if a <= b and b <= c:
        assert a <= c


@given(st.lists(maven_free, min_size=3, max_size=3))
def test_maven_free_spellings_are_totally_ordered(texts: list[str]) -> None:
    a, b, c = (Version(t, "maven") for t in texts)
    assert (a <= b) or (b <= a)
    assert not (a < b and b < a)
    if a == b:
        assert hash(a) == hash(b)
    if a <= b and b <= c:
        assert a <= c
    assert [str(v) for v in (a, b, c)] == texts
