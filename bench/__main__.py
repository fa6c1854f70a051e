"""``python -m bench [--quick] [--only NAME ...] [--profile]``: run the benchmarks.

Each benchmark prints its subject, its baseline and the ratio between them, both measured in
this run; the JSON summary goes to ``bench/results/summary.json``. The exit code is 0 even when
a goal is missed: a benchmark measures, the tests decide.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

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
from bench.harness import NotRun, Result, Sizes, leftover_databases, write_summary

BENCHMARKS: dict[str, Callable[[Sizes], Result]] = {
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
    sizes = Sizes.choose(args.quick)
    results: list[Result] = []
    not_run: dict[str, NotRun] = {}
    for name in args.only or list(BENCHMARKS):
        print(f"running {name} ...", flush=True)
        try:
            result = BENCHMARKS[name](sizes)
        except NotRun as reason:  # recorded as not run; the other benchmarks go on
            print(f"  {name}: NOT RUN: {reason.reason}\n    to fix: {reason.hint}", flush=True)
            not_run[name] = reason
            continue
        print(_line(result), flush=True)
        results.append(result)
    if args.profile:
        from bench.profiling import profile_schema_apply

        print(profile_schema_apply(sizes))
    path = write_summary(results, args.quick, not_run)
    print(f"summary: {path}")
    leftovers = leftover_databases()
    if leftovers:
        print(f"left behind (drop them by hand): {', '.join(leftovers)}", file=sys.stderr)
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these")
    parser.add_argument("--profile", action="store_true", help="profile Stairway's schema apply")
    return parser


def _line(result: Result) -> str:
    verdict = "met" if result.met else "MISSED"
    return (
        (
            f"  {result.name}: ratio {result.ratio:.2f} (goal {result.goal_text}, {verdict})\n"
            f"    subject  {result.subject}: {result.subject_seconds * 1000:.3f} ms\n"
            f"    baseline {result.baseline}: {result.baseline_seconds * 1000:.3f} ms"
        )
        + "".join(f"\n    {note}" for note in result.notes)
        + "".join(
            f"\n    {label}: {value:,.6g} (goal {sign} {goal:g}, "
            f"{'met' if (value >= goal if sign == '>=' else value <= goal) else 'MISSED'})"
            for label, (value, sign, goal) in result.absolute.items()
        )
    )


if __name__ == "__main__":
    sys.exit(main())
