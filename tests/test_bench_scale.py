"""``python -m bench --scale``: the growth arithmetic (pure), refused sizes, and the summary's
shape from a real run at two tiny sizes on PostgreSQL."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from bench import harness, scale
from bench.__main__ import main
from bench.compare import rate_changes, rate_table
from bench.growth import Growth, project, project_memory, project_seconds
from tests.conftest import require_postgres

# Up to 1M, so the larger size (at most 100 times it) never passes the 100M projected to.
sizes = st.integers(min_value=1_000, max_value=1_000_000)
figures = st.floats(min_value=1.0, max_value=1e9, allow_nan=False)


@given(sizes, st.integers(min_value=2, max_value=100), figures, figures)
def test_memory_is_the_largest_peak_when_flat_else_the_line_through_both(
    small_size: int, times: int, small: float, large: float
) -> None:
    growth = Growth("peak rss", small_size, small_size * times, small, large)
    assert growth.flat == (abs(large - small) <= 0.2 * small)
    projected, method = project_memory(growth, 100_000_000)
    if growth.flat:
        assert projected == large and method.startswith("flat")
        return
    assert method.startswith("not flat")
    # The projection lies on the line through both measured sizes.
    at_large, _ = project_memory(growth, growth.large_size)
    assert at_large == pytest.approx(large)
    at_small, _ = project_memory(growth, growth.small_size)
    assert at_small == pytest.approx(max(small, 0.0), rel=1e-6, abs=1e-3)
    assert (projected >= large) == (large >= small)


@given(st.integers(min_value=1, max_value=10**9), figures)
def test_projected_time_at_the_rate_covers_every_object(objects: int, rate: float) -> None:
    assert project_seconds(objects, rate) * rate == pytest.approx(objects)


def test_projection_starts_from_the_largest_size() -> None:
    rate = Growth("rate", 1_000_000, 10_000_000, 20_000.0, 19_000.0)
    memory = Growth("peak rss", 1_000_000, 10_000_000, 100e6, 190e6)
    ahead = project(rate, memory)
    assert ahead.from_objects == 10_000_000 and ahead.rate == 19_000.0
    assert math.isclose(ahead.seconds, 100_000_000 / 19_000.0)
    assert ahead.memory_bytes == pytest.approx(190e6 + 90e6 / 9e6 * 90e6)
    assert "linearly from 1,000,000 to 10,000,000" in ahead.memory_method


@pytest.mark.parametrize(
    ("given_sizes", "says"),
    [
        ("12q", "'12q' is not a size"),
        ("1m,100k", "does not grow"),
        ("500", "too few"),
        ("100k,,1m", "'' is not a size"),
    ],
)
def test_a_bad_scale_exits_2_with_a_hint(
    given_sizes: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--scale", given_sizes]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --scale: ") and says in err and "hint: give growing sizes" in err
    assert "Traceback" not in err


def test_scale_refuses_a_benchmark_that_does_not_grow(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--scale", "2k", "--only", "fleet"]) == 2
    assert "hint: --scale runs only transfer" in capsys.readouterr().err


def test_a_size_that_would_not_fit_on_the_disk_is_refused(tmp_path: Path) -> None:
    with pytest.raises(scale.ScaleError, match="GB free") as refused:
        scale.check_disk([10**12], [tmp_path])
    assert "smaller sizes" in refused.value.hint


def test_parse_sizes_reads_k_and_m() -> None:
    assert scale.parse_sizes("100k, 1m,10M") == (100_000, 1_000_000, 10_000_000)


def test_summary_has_every_size_run_and_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    require_postgres()
    monkeypatch.setattr(harness, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(scale, "ONE_RUN_FROM", 4_000)  # the largest size's one-run path, quickly
    assert main(["--only", "transfer", "--scale", "2k,4k"]) == 0
    out = capsys.readouterr().out
    assert "goal flat within 20%" in out and "100,000,000 objects projected" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["scale"]["sizes"] == [2_000, 4_000]
    trends = {t["name"]: t for t in summary["scale"]["benchmarks"]}
    assert set(trends) == {"transfer", "transfer_export"}
    for trend in trends.values():
        small, large = trend["points"]
        assert (small["objects"], small["runs_per_side"], small["one_run_reason"]) == (
            2_000,
            3,
            None,
        )
        assert large["runs_per_side"] == 1 and "takes minutes" in large["one_run_reason"]
        assert len(small["subject_rate"]["each"]) == 3 == len(small["baseline_rate"]["each"])
        roles = {p["role"] for p in small["rss"]["processes"]}
        assert roles == {"benchmark", "worker"}  # the import and export fork their workers
        assert all(p["peak_bytes"] > 0 for p in small["rss"]["processes"])
        assert set(trend["goals"]) == {"rate_flat", "rss_flat"}
        assert trend["goals"]["rate_flat"]["from_objects"] == 2_000
        assert trend["projection"]["objects"] == 100_000_000
    assert {b["name"] for b in summary["benchmarks"]} == {"transfer", "transfer_export"}


def _scaled(rates: dict[int, float]) -> dict[str, object]:
    points = [{"objects": n, "subject_rate": {"median": r}} for n, r in rates.items()]
    return {"benchmarks": [], "scale": {"benchmarks": [{"name": "transfer", "points": points}]}}


def test_compare_prints_each_size_rate_change() -> None:
    old, new = _scaled({100_000: 10_000.0, 1_000_000: 8_000.0}), _scaled({1_000_000: 10_000.0})
    rows = {(c.name, c.objects): c for c in rate_changes(old, new)}
    assert rows[("transfer", 1_000_000)].percent == pytest.approx(25.0)
    assert rows[("transfer", 100_000)].new is None and rows[("transfer", 100_000)].percent is None
    assert rate_changes({"benchmarks": []}, {"benchmarks": []}) == []
    console = Console(width=200, record=True)
    console.print(rate_table(list(rows.values()), "old.json", "new.json"))
    text = console.export_text()
    assert "+25.0" in text and "1,000,000" in text
