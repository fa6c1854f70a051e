"""Upgrade paths through required stops, from plain lists of releases."""

from __future__ import annotations

import pytest

from stairway.errors import PlanError
from stairway.versions import Release, Version, check_hop, upgrade_path


def rel(version: str, schema: int = 0, **flags: object) -> Release:
    requires = flags.pop("requires", None)
    return Release(
        Version(version),
        schema,
        requires=Version(str(requires)) if requires else None,
        **flags,  # type: ignore[arg-type]
    )


RELEASES = [
    rel("1.0.0", lts=True),
    rel("1.0.4"),
    rel("1.1.0"),
    rel("1.1.2"),
    rel("2.0.0", requires="1.0.4", lts=True),
    rel("2.1.0"),
    rel("3.0.0", requires="2.1.0"),
]


def path(current: str, target: str) -> list[str]:
    return [str(r.version) for r in upgrade_path(RELEASES, Version(current), Version(target))]


@pytest.mark.parametrize(
    ("current", "target", "expected"),
    [
        ("1.0.0", "1.0.4", ["1.0.4"]),
        ("1.0.0", "2.0.0", ["1.0.4", "2.0.0"]),  # required stop, then LTS -> LTS
        ("1.0.0", "1.1.2", ["1.0.4", "1.1.2"]),  # latest maintenance first
        ("1.1.0", "2.0.0", ["1.1.2", "2.0.0"]),  # requires 1.0.4 is already behind
        ("1.0.0", "3.0.0", ["1.0.4", "2.0.0", "2.1.0", "3.0.0"]),
        ("2.0.0", "2.0.0", []),
    ],
)
def test_paths(current: str, target: str, expected: list[str]) -> None:
    assert path(current, target) == expected


def test_without_lts_each_series_is_visited() -> None:
    plain = [rel("1.0.0"), rel("1.0.1"), rel("1.1.0"), rel("1.2.0"), rel("1.2.3")]
    got = upgrade_path(plain, Version("1.0.0"), Version("1.2.3"))
    assert [str(r.version) for r in got] == ["1.0.1", "1.1.0", "1.2.3"]


def test_downgrade_is_refused_with_both_versions() -> None:
    with pytest.raises(PlanError, match=r"1\.0\.0 is older than the site's 2\.0\.0"):
        path("2.0.0", "1.0.0")


def test_unknown_target_is_refused() -> None:
    with pytest.raises(PlanError, match=r"no release 9\.9\.9") as info:
        path("1.0.0", "9.9.9")
    assert "known releases" in info.value.hint


def test_a_hop_that_skips_a_required_stop_is_refused() -> None:
    with pytest.raises(PlanError, match=r"skips required stops: the path is 1\.0\.0 -> 1\.0\.4"):
        check_hop(RELEASES, Version("1.0.0"), Version("2.0.0"))
    check_hop(RELEASES, Version("1.0.4"), Version("2.0.0"))


def test_not_a_version() -> None:
    with pytest.raises(PlanError, match="not a version"):
        Version.parse("two")


def test_semver_prereleases_order_before_the_release() -> None:
    assert Version("2.0.0rc1") < Version("2.0.0") < Version("2.0.1")
