"""The hand-written labels in ``labels.toml``: for each revision, dangerous or safe as expand.

Each label was judged from the rendered SQL's effect on a busy PostgreSQL database while the
previous release keeps serving, and records the digest of the text it was judged from.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

LABELS = Path(__file__).with_name("labels.toml")
VERDICTS = ("dangerous", "safe")


@dataclass(frozen=True)
class Label:
    """One migration's verdict and why."""

    project: str
    revision: str
    label: str
    reason: str
    sha256: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.project, self.revision)

    @property
    def dangerous(self) -> bool:
        return self.label == "dangerous"

    def describe(self) -> dict[str, str]:
        return {"project": self.project, "revision": self.revision, "reason": self.reason}


def load_labels(path: Path = LABELS) -> list[Label]:
    """Every ``[[migration]]`` of the labels file, in file order."""
    with path.open("rb") as handle:
        document = tomllib.load(handle)
    return [_label(entry) for entry in document.get("migration", [])]


def _label(entry: Mapping[str, object]) -> Label:
    return Label(
        project=str(entry["project"]),
        revision=str(entry["revision"]),
        label=str(entry["label"]),
        reason=str(entry["reason"]),
        sha256=str(entry.get("sha256", "")),
    )
