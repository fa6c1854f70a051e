"""The hand-written labels of the ``phases`` benchmark's corpus are well formed (no venv needed)."""

from __future__ import annotations

from collections import Counter

from bench.phase_corpus.labels import VERDICTS, load_labels


def test_labels_cover_two_projects_and_enough_migrations() -> None:
    # Rendering needs the corpus venv, so only the count is checked here; the benchmark refuses
    # a label whose migration renders empty, so these are labels of real PostgreSQL migrations.
    labels = load_labels()
    projects = Counter(label.project for label in labels)
    assert len(labels) >= 150
    assert len(projects) >= 2


def test_every_label_is_a_verdict_with_a_specific_reason() -> None:
    for label in load_labels():
        assert label.label in VERDICTS, label
        assert len(label.reason.split()) >= 6, label  # a statement, a table and a why
        assert len(label.sha256) == 12, label


def test_no_migration_is_labelled_twice() -> None:
    keys = Counter(label.key for label in load_labels())
    assert [key for key, count in keys.items() if count > 1] == []


def test_both_verdicts_occur_in_each_project() -> None:
    seen = {(label.project, label.label) for label in load_labels()}
    assert {project for project, verdict in seen if verdict == "dangerous"} == {
        project for project, _ in seen
    }
