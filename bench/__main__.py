"""``python -m bench [--quick] [--only NAME ...] [--profile]``: run the benchmarks.
``python -m bench --scale 100k,1m,10m [--only NAME ...]``: the benchmarks whose cost grows with
the data (transfer, object_rewrite, backfill) at each size, with every process's peak memory.
``python -m bench --compare OLD.json NEW.json``: the change in each ratio between two summaries.

Each benchmark runs its subject and its baseline in turns, at least three times each, and prints
both medians with their spread and the ratio between them; the JSON summary (machine, sizes,
every run, goals) goes to ``bench/results/summary.json``. A benchmark that cannot run here says
why and what would let it run, and the others go on. The exit code is 0 even when a goal is
missed (a benchmark measures, the tests decide); 1 when one crashed or left a database behind.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from bench import (
    adopt_history,
    backfill,
    fleet,
    guard_cost,
    object_parse,
    object_rewrite,
    phases,
    rolling,
    schema_apply,
    transfer,
    upgrade,
)
from bench.harness import NotRun, Result, Sizes, leftover_databases, spread, write_summary

# A benchmark returns one result, or several when one run yields more than one ratio.
BENCHMARKS: dict[str, Callable[[Sizes], Result | list[Result]]] = {
    schema_apply.NAME: schema_apply.run,
    adopt_history.NAME: adopt_history.run,
    guard_cost.NAME: guard_cost.run,
    object_parse.NAME: object_parse.run,
    object_rewrite.NAME: object_rewrite.run,
    upgrade.NAME: upgrade.run,
    transfer.NAME: transfer.run,
    fleet.NAME: fleet.run,
    backfill.NAME: backfill.run,
    rolling.NAME: rolling.run,
    phases.NAME: phases.run,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.compare:
        from bench.compare import print_comparison

        return print_comparison(Path(args.compare[0]), Path(args.compare[1]))
    sizes = Sizes.choose(args.quick)
    if args.scale is not None:
        return _scale(args.scale, args.only, sizes, args.quick)
    results: list[Result] = []
    not_run: dict[str, NotRun] = {}
    failed: dict[str, str] = {}
    for name in args.only or list(BENCHMARKS):
        print(f"running {name} ...", flush=True)
        try:
            outcome = BENCHMARKS[name](sizes)
        except NotRun as reason:  # recorded as not run; the other benchmarks go on
            print(f"  {name}: NOT RUN: {reason.reason}\n    to fix: {reason.hint}", flush=True)
            not_run[name] = reason
            continue
        except Exception as error:  # a crash is recorded too, and the summary still written
            traceback.print_exc()
            print(f"  {name}: FAILED: {error!r}", flush=True)
            failed[name] = repr(error)
            continue
        for result in outcome if isinstance(outcome, list) else [outcome]:
            print(_line(result), flush=True)
            results.append(result)
    if args.profile:
        _profile(sizes, args.only or list(BENCHMARKS))
    path = write_summary(results, sizes, args.quick, not_run, failed)
    print(f"summary: {path}")
    return _finish(bool(failed))


def _scale(text: str, only: list[str] | None, sizes: Sizes, quick: bool) -> int:
    from bench import scale

    try:
        counts = scale.parse_sizes(text)
        names = _scaled(only)
        scale.check_disk(counts, scale.disk_paths())
    except scale.ScaleError as error:
        print(f"error: {error.message}\nhint: {error.hint}", file=sys.stderr)
        return 2
    measured = scale.measure(names, counts, sizes)
    found = scale.trends(measured.points)
    for trend in found:
        print("\n".join(scale.trend_lines(trend)), flush=True)
    largest = [p.result for p in measured.points if p.objects == max(counts)]
    # The top-level results and sizes are the largest size's, so --compare sets like beside like.
    top = replace(sizes, objects=max(counts), repeats=scale.repeats_for(max(counts)))
    path = write_summary(
        largest, top, quick, measured.not_run, measured.failed, scale.summary(counts, found)
    )
    print(f"summary: {path}")
    return _finish(bool(measured.failed))


def _scaled(only: list[str] | None) -> list[str]:
    from bench.scale import RUNS, ScaleError

    others = sorted(set(only or []) - set(RUNS))
    if others:
        raise ScaleError(
            f"--scale: {', '.join(others)} does not grow with the data",
            f"--scale runs only {', '.join(RUNS)}; run the others without --scale",
        )
    return only or list(RUNS)


def _finish(failed: bool) -> int:
    leftovers = leftover_databases()
    if leftovers:
        print(f"left behind (drop them by hand): {', '.join(leftovers)}", file=sys.stderr)
    return 1 if leftovers or failed else 0


def _profile(sizes: Sizes, names: list[str]) -> None:
    from bench.profiling import PROFILED, profile

    for name in names:
        if name in PROFILED:
            print(profile(name, sizes), flush=True)
        else:
            print(f"no profile of {name}: --profile covers {', '.join(PROFILED)}", flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run the subject side once more under cProfile; top functions go beside the summary",
    )
    parser.add_argument(
        "--scale",
        nargs="?",
        const="100k,1m",
        metavar="SIZES",
        help="run transfer, object_rewrite and backfill at each size (objects, e.g. 100k,1m,10m; "
        "alone: 100k,1m) with every process's peak memory, and judge how rate and memory grow",
    )
    parser.add_argument(
        "--compare",
        nargs=2,
        metavar=("OLD", "NEW"),
        help="print the change in each ratio between two JSON summaries, and run nothing",
    )
    return parser


def _line(result: Result) -> str:
    verdict = "met" if result.met else "MISSED"
    ratios = spread(result.round_ratios)
    return (
        (
            f"  {result.name}: ratio {result.ratio:.2f} (goal {result.goal_text}, {verdict}); "
            f"per round {ratios['min']:.2f}..{ratios['max']:.2f}\n"
            f"    subject  {result.subject}: {_figures(result, result.runs.subject)}\n"
            f"    baseline {result.baseline}: {_figures(result, result.runs.baseline)}"
        )
        + "".join(f"\n    {note}" for note in result.notes)
        + "".join(
            f"\n    {label}: {value:,.6g} (goal {sign} {goal:g}, "
            f"{'met' if (value >= goal if sign == '>=' else value <= goal) else 'MISSED'})"
            for label, (value, sign, goal) in result.absolute.items()
        )
    )


def _figures(result: Result, values: tuple[float, ...]) -> str:
    """Median (min..max, n runs), in ms when the figures are seconds."""
    figures = spread(values)
    scale, unit = (1000.0, " ms") if result.unit == "s" else (1.0, f" {result.unit}")
    low, mid, high = (figures[k] * scale for k in ("min", "median", "max"))
    return f"median {mid:,.3f}{unit} ({low:,.3f}..{high:,.3f}, {len(values)} runs)"


if __name__ == "__main__":
    sys.exit(main())
