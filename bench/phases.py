"""``phases``: Stairway's expand check against squawk on real migrations labelled by hand.

The corpus is every revision of prefect's and dagster's Alembic histories, rendered to
PostgreSQL SQL in a private venv (``bench.phase_corpus``) and labelled dangerous or safe as an
expand change in ``bench/phase_corpus/labels.toml``. Each judge's recall on dangerous
migrations and false-positive rate on safe ones are reported; the ratio is Stairway's check time
over squawk's for the whole corpus. Goal: recall >= 0.95 and FPR <= 0.10, both better than
squawk's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.harness import NotRun, Result, Sizes
from bench.phase_corpus import environment, judges
from bench.phase_corpus.corpus import Migration, load_corpus
from bench.phase_corpus.labels import Label, load_labels

NAME = "phases"
RECALL_GOAL = 0.95
FPR_GOAL = 0.10


@dataclass(frozen=True)
class Score:
    """A judge's recall on dangerous and false-positive rate on safe migrations."""

    recall: float
    fpr: float

    @classmethod
    def of(cls, flagged: frozenset[tuple[str, str]], labels: Sequence[Label]) -> Score:
        dangerous = [label for label in labels if label.dangerous]
        safe = [label for label in labels if not label.dangerous]
        caught = sum(label.key in flagged for label in dangerous)
        wrong = sum(label.key in flagged for label in safe)
        return cls(caught / max(1, len(dangerous)), wrong / max(1, len(safe)))


def scored(labels: Sequence[Label], corpus: Sequence[Migration]) -> tuple[list[Label], list[str]]:
    """The labels whose migration rendered exactly as judged, and why the others were left out."""
    rendered = {migration.key: migration for migration in corpus}
    kept: list[Label] = []
    left_out: list[str] = []
    for label in labels:
        migration = rendered.get(label.key)
        if migration is None or migration.method == "failed":
            left_out.append(f"{label.project} {label.revision}: not rendered")
        elif migration.digest != label.sha256:
            left_out.append(f"{label.project} {label.revision}: render changed, label stale")
        else:
            kept.append(label)
    return kept, left_out


def run(sizes: Sizes) -> Result:
    venv = environment.ensure_venv()
    corpus = load_corpus(venv)
    labels, left_out = scored(load_labels(), corpus)
    if not labels:
        raise NotRun("no labelled migration matches the rendered corpus", hint="relabel")
    judged = [m for m in corpus if m.key in {label.key for label in labels}]
    ours, theirs = judges.stairway(judged), judges.squawk(venv.squawk, judged)
    mine, squawks = Score.of(ours.flagged, labels), Score.of(theirs.flagged, labels)
    misses = [lab.describe() for lab in labels if lab.dangerous and lab.key not in ours.flagged]
    false = [lab.describe() for lab in labels if not lab.dangerous and lab.key in ours.flagged]
    return Result(
        name=NAME,
        subject="Stairway: check_phase(expand) on every labelled migration",
        baseline="squawk --assume-in-transaction (default rules) on the same files",
        subject_seconds=ours.seconds,
        baseline_seconds=theirs.seconds,
        goal=1.0,
        timings={"stairway_s": [ours.seconds], "squawk_s": [theirs.seconds]},
        details=_details(corpus, labels, left_out, mine, squawks),
        notes=[
            f"Stairway recall {mine.recall:.3f} FPR {mine.fpr:.3f}; "
            f"squawk recall {squawks.recall:.3f} FPR {squawks.fpr:.3f}",
            f"Stairway misses {len(misses)}, false positives {len(false)}",
            *[f"  left out: {reason}" for reason in left_out],
        ],
        absolute={
            "Stairway recall": (mine.recall, ">=", max(RECALL_GOAL, squawks.recall)),
            "Stairway FPR": (mine.fpr, "<=", min(FPR_GOAL, squawks.fpr)),
        },
        records={"stairway_misses": misses, "stairway_false_positives": false},
    )


def _details(
    corpus: Sequence[Migration],
    labels: Sequence[Label],
    left_out: Sequence[str],
    mine: Score,
    squawks: Score,
) -> dict[str, float | int | str]:
    return {
        "migrations_scored": len(labels),
        "dangerous": sum(label.dangerous for label in labels),
        "safe": sum(not label.dangerous for label in labels),
        "left_out": len(left_out),
        "rendered_offline": sum(m.method == "offline" for m in corpus),
        "rendered_online": sum(m.method == "online" for m in corpus),
        "render_failed": sum(m.method == "failed" for m in corpus),
        "rendered_empty": sum(m.method != "failed" and not m.sql.strip() for m in corpus),
        "stairway_recall": mine.recall,
        "stairway_fpr": mine.fpr,
        "squawk_recall": squawks.recall,
        "squawk_fpr": squawks.fpr,
        "goal": f"recall >= {RECALL_GOAL}, FPR <= {FPR_GOAL}, both better than squawk's",
    }
