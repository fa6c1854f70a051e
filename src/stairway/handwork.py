"""What an upgrade leaves for an operator's hand: a delta it did not apply, a config-file item
it could not migrate. Each item says what, why, and the command that settles it; ``verify``
shows them before the upgrade, and an upgrade that leaves any exits 3 naming them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from stairway.errors import ManualStepNeeded


@dataclass(frozen=True)
class HandItem:
    """One thing an upgrade leaves for the operator: what, why, and the command that settles it."""

    what: str  # "delta policy-password-2.0", "config file /srv/app/etc/app.toml"
    reason: str
    command: str  # what settles it

    def describe(self) -> str:
        """The item, why it needs a hand, and how to settle it, on one line."""
        return f"{self.what}: {self.reason}; to settle it: {self.command}"

    def as_json(self) -> dict[str, str]:
        """The item as a plain dict, for ``--json``."""
        return asdict(self)


def delta_item(delta_id: str, reason: str) -> HandItem:
    """A delta judged ``report``: an operator changed what it would change."""
    return HandItem(
        f"delta {delta_id}",
        reason or "the objects it changes are not as the previous release shipped them",
        f"make the change by hand and run `stairway deltas apply`, or keep yours with "
        f'`stairway deltas skip {delta_id} --reason "..."`',
    )


def config_item(path: str, said: str) -> HandItem:
    """A config-file migration that needs a person (manual, or a conflict in the file)."""
    return HandItem(f"config file {path}", said, f"edit {path} by hand as described")


def recorded(step_data: Iterable[Mapping[str, Any]]) -> list[HandItem]:
    """The items the upgrade's steps recorded in its journal, oldest first, each once (every
    release's delta step reports a delta it still cannot apply)."""
    found: list[HandItem] = []
    for data in step_data:
        found += [HandItem(**item) for item in data.get("hand", [])]
        if "hand" not in data:  # a journal written before items carried their reason
            found += [delta_item(d, "") for d in data.get("reported", [])]
            found += [
                HandItem("config file", a, "edit the file by hand as described")
                for a in data.get("attention", [])
            ]
    return list(dict.fromkeys(found))


def left_for_operator(target: str, items: list[HandItem]) -> ManualStepNeeded:
    """The error (exit 3) of an upgrade that finished but left ``items`` for a person."""
    listed = "; ".join(f"{i.what}: {i.reason}" for i in items)
    return ManualStepNeeded(
        f"the upgrade to {target} is complete and kept, but {len(items)} item(s) need an "
        f"operator: {listed}",
        hint="; ".join(i.command for i in items),
    )


def left_in_rehearsal(target: str, items: list[HandItem]) -> ManualStepNeeded:
    """The error (exit 3) of a rehearsal whose upgrade worked but left ``items`` for a person:
    the real upgrade will leave them too."""
    listed = "; ".join(f"{i.what}: {i.reason}" for i in items)
    return ManualStepNeeded(
        f"the rehearsed upgrade to {target} works, but it leaves {len(items)} item(s) for an "
        f"operator, as the real one will: {listed}",
        hint="; ".join(i.command for i in items) + "; the live site was not touched",
    )
