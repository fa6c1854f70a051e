"""``phases``: Stairway's expand check against squawk on real migrations labelled by hand.

The corpus is every revision of prefect's, dagster's and mlflow's Alembic histories, rendered
to PostgreSQL SQL in a private venv (``bench.phase_corpus``) and labelled dangerous or safe as
an expand change in ``bench/phase_corpus/labels.toml``. A revision that renders no PostgreSQL
migration (empty, or only SELECTs) is left out of the corpus and a label on one is refused.

Goal: Stairway's recall on dangerous migrations >= 0.95 and its false-positive rate on safe
ones <= 0.10, both at least as good as squawk's (default rules, and again without its two
timeout rules). The ratio, Stairway's check time over squawk's for the whole corpus, is
reported with no goal.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.harness import MIN_REPEATS, NotRun, Result, Sizes, alternate
from bench.phase_corpus import environment, judges
from bench.phase_corpus.corpus import PROJECTS, Migration, load_corpus
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

    def describe(self) -> str:
        return f"recall {self.recall:.3f} FPR {self.fpr:.3f}"


def scored(labels: Sequence[Label], corpus: Sequence[Migration]) -> tuple[list[Label], list[str]]:
    """The labels whose migration rendered exactly as judged, and why the others were left out."""
    rendered = {migration.key: migration for migration in corpus}
    kept: list[Label] = []
    left_out: list[str] = []
    for label in labels:
        reason = _unscorable(label, rendered.get(label.key))
        if reason:
            left_out.append(f"{label.project} {label.revision}: {reason}")
        else:
            kept.append(label)
    return kept, left_out


def _unscorable(label: Label, migration: Migration | None) -> str:
    if migration is None or migration.method == "failed":
        return "not rendered"
    if migration.emptiness:
        return f"labelled, but {migration.emptiness}: no PostgreSQL migration to judge"
    if migration.digest != label.sha256:
        return "render changed, label stale"
    return ""


def run(sizes: Sizes) -> Result:
    venv = environment.ensure_venv()
    corpus = load_corpus(venv)
    labels, left_out = scored(load_labels(), corpus)
    if not labels:
        raise NotRun("no labelled migration matches the rendered corpus", hint="relabel")
    keys = {label.key for label in labels}
    judged = [m for m in corpus if m.key in keys]
    verdicts: dict[str, judges.Verdicts] = {}

    def judge(name: str, run: Callable[[], judges.Verdicts]) -> float:
        verdicts[name] = run()
        return verdicts[name].seconds

    runs = alternate(
        lambda: judge("stairway", lambda: judges.stairway(judged, corpus)),
        lambda: judge("squawk", lambda: judges.squawk(venv.squawk, judged)),
        MIN_REPEATS,
    )
    ours, theirs = verdicts["stairway"], verdicts["squawk"]
    fairer = judges.squawk(venv.squawk, judged, exclude=judges.TIMEOUT_RULES)
    mine = Score.of(ours.flagged, labels)
    squawks = Score.of(theirs.flagged, labels)
    squawks_fairer = Score.of(fairer.flagged, labels)
    misses = [lab.describe() for lab in labels if lab.dangerous and lab.key not in ours.flagged]
    false = [lab.describe() for lab in labels if not lab.dangerous and lab.key in ours.flagged]
    details = _details(corpus, labels, left_out) | _rates(mine, squawks, squawks_fairer)
    return Result(
        name=NAME,
        subject="Stairway: check_phase(expand) on every labelled migration",
        baseline="squawk --assume-in-transaction (default rules) on the same files",
        runs=runs,
        goal=None,
        timings={
            "stairway_s": list(runs.subject),
            "squawk_s": list(runs.baseline),
            "squawk_without_timeout_rules_s": [fairer.seconds],
        },
        details=details,
        notes=[
            f"scored {len(labels)} migrations: {_per_project(labels)}",
            f"Stairway {mine.describe()}; squawk {squawks.describe()}; "
            f"squawk without {'/'.join(judges.TIMEOUT_RULES)} {squawks_fairer.describe()}",
            f"Stairway misses {len(misses)}, false positives {len(false)}",
            f"left out of the corpus: {_excluded(corpus)} (rendered, not a PostgreSQL migration)",
            *[f"  label refused: {reason}" for reason in left_out],
        ],
        absolute={
            "Stairway recall": (
                mine.recall,
                ">=",
                max(RECALL_GOAL, squawks.recall, squawks_fairer.recall),
            ),
            "Stairway FPR": (mine.fpr, "<=", min(FPR_GOAL, squawks.fpr, squawks_fairer.fpr)),
        },
        records={"stairway_misses": misses, "stairway_false_positives": false},
    )


def _per_project(labels: Sequence[Label]) -> str:
    counts = Counter(label.project for label in labels)
    return ", ".join(f"{project} {counts[project]}" for project in PROJECTS)


def _excluded(corpus: Sequence[Migration]) -> str:
    counts = Counter((m.project, m.emptiness) for m in corpus if m.emptiness)
    return "; ".join(f"{project} {count} {why}" for (project, why), count in sorted(counts.items()))


def _details(
    corpus: Sequence[Migration], labels: Sequence[Label], left_out: Sequence[str]
) -> dict[str, float | int | str]:
    scored_keys = {label.key for label in labels}
    return {
        "migrations_scored": len(labels),
        **{f"scored_{p}": sum(label.project == p for label in labels) for p in PROJECTS},
        "dangerous": sum(label.dangerous for label in labels),
        "safe": sum(not label.dangerous for label in labels),
        "labels_refused": len(left_out),
        "rendered_offline": sum(m.method == "offline" for m in corpus),
        "rendered_online": sum(m.method == "online" for m in corpus),
        "render_failed": sum(m.method == "failed" for m in corpus),
        "initial_schemas": sum(m.method == "initial" for m in corpus),
        "excluded_empty": sum(m.emptiness == "rendered empty" for m in corpus),
        "excluded_only_selects": sum(m.emptiness == "renders only SELECTs" for m in corpus),
        "excluded_why": "no PostgreSQL migration: revisions for SQLite/MySQL only or whose "
        "guards find no table on a scratch database render empty; data migrations finding no "
        "rows there render only SELECTs",
        "excluded": _excluded(corpus),
        "unlabelled": sum(m.key not in scored_keys for m in corpus if _judgeable(m)),
    }


def _judgeable(migration: Migration) -> bool:
    # an initial schema is what a history starts from, read for the shape, never judged
    return migration.method not in ("failed", "initial") and not migration.emptiness


def _rates(mine: Score, squawks: Score, fairer: Score) -> dict[str, float | int | str]:
    return {
        "stairway_recall": mine.recall,
        "stairway_fpr": mine.fpr,
        "squawk_recall": squawks.recall,
        "squawk_fpr": squawks.fpr,
        "squawk_without_timeout_rules_recall": fairer.recall,
        "squawk_without_timeout_rules_fpr": fairer.fpr,
        "goal": f"recall >= {RECALL_GOAL}, FPR <= {FPR_GOAL}, both at least squawk's "
        "(either rule set); check time against squawk's reported, no goal",
    }
