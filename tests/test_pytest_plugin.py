"""The pytest plugin of ``stairway test-paths``: one test per upgrade path of the example
product, passing; a copy whose snapshot has an index the history never creates, failing and
naming the path and the index; a bad option refused; and no change at all without the option."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from test_pathtests import EXAMPLE, index_the_history_never_creates

pytest_plugins = ["pytester"]
# Also when the entry point is not installed. Without pytest-benchmark, as the outer run: under
# xdist it warns at configure time, and the outer run's filters make the warning an error.
PLUGIN = ("-p", "stairway.pytest_plugin", "-p", "no:benchmark")


def test_every_default_path_of_the_example_is_a_passing_test(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(*PLUGIN, f"--stairway-paths={EXAMPLE}", "-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [f"stairway-paths::{v} -> 2.1.0 (sqlite) PASSED*" for v in ("1.0.0", "1.0.4", "2.0.0")]
    )


def test_a_snapshot_index_the_history_never_creates_fails_its_path_naming_it(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog"
    shutil.copytree(EXAMPLE, catalog, ignore=shutil.ignore_patterns("__pycache__"))
    index_the_history_never_creates(catalog, tmp_path)
    pytester.makeini(f"[pytest]\nstairway_paths = {catalog}\n")  # the ini key names it
    result = pytester.runpytest(*PLUGIN, "--stairway-paths-from=2.0.0")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "upgrade path 2.0.0 -> 2.1.0 (sqlite) failed:",
            "  2.0.0 -> 2.1.0 (sqlite): index connectors_name on connectors: only in the new "
            "site at 2.1.0: (name)",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_a_release_the_catalog_lacks_stops_the_run_saying_what_to_do(
    pytester: pytest.Pytester,
) -> None:
    result = pytester.runpytest(*PLUGIN, f"--stairway-paths={EXAMPLE}", "--stairway-paths-to=7.0")
    assert result.ret == 2
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["error: *no release 7.0*", "hint: *"])


def test_without_the_option_the_plugin_changes_nothing_and_imports_nothing(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import sys

        def test_alone():
            assert "stairway.pathtests" not in sys.modules
        """
    )
    result = pytester.runpytest_subprocess(*PLUGIN, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["collected 1 item"])
