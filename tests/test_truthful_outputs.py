"""What commands say is what is so: an unknown release is an error everywhere, a delta that
needs a hand is shown before and after an upgrade, every command speaks JSON, counts agree,
estimates admit what they do not know, and ids survive a narrow terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
import typer

from cli_runner import stairway
from stairway import commands
from stairway.cli import app

TARGETED = [
    ("plan",),
    ("plan", "--estimate"),
    ("verify",),
    ("migrate",),
    ("migrate", "--dry-run"),
    ("config", "migrate"),
    ("config", "migrate", "--dry-run"),
    ("rehearse",),
    ("upgrade",),
    ("licence", "check"),
    ("notes",),
]


Path_ = tuple[str, ...]


def _commands(group: Any, prefix: Path_ = ()) -> dict[Path_, click.Command]:
    found: dict[Path_, click.Command] = {}
    for name, command in group.commands.items():
        found[(*prefix, name)] = command
        if getattr(command, "commands", None):  # a group (typer's own click may differ)
            found.update(_commands(command, (*prefix, name)))
    return found


def every_command() -> dict[tuple[str, ...], click.Command]:
    return _commands(typer.main.get_group(app))


def options(command: click.Command) -> set[str]:
    return {name for p in command.params for name in p.opts}


def test_every_command_that_takes_a_target_is_tried_here() -> None:
    taking = {path for path, c in every_command().items() if "--to" in options(c)}
    assert taking == {t[:2] if t[0] in ("config", "licence") else t[:1] for t in TARGETED}


@pytest.mark.parametrize("words", TARGETED, ids=" ".join)
def test_an_unknown_target_release_is_an_error_naming_the_known_ones(
    site_file: Path, words: tuple[str, ...]
) -> None:
    commands.init(commands.open_context(site_file, None), "1.0.0")
    code, out, err = stairway(*words, "--to", "9.9.9", "--site", str(site_file))
    assert code == 2, out + err
    assert "no release 9.9.9" in err and "1.0.0, 1.0.4, 1.1.0, 2.0.0, 2.1.0" in err
    assert "pass one of the known releases to --to" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("words", [("notes",), ("config", "migrate", "--dry-run")], ids=" ".join)
def test_an_unknown_starting_release_is_an_error_too(
    site_file: Path, words: tuple[str, ...]
) -> None:
    commands.init(commands.open_context(site_file, None), "1.0.0")
    code, _, err = stairway(*words, "--from", "0.9", "--site", str(site_file))
    assert code == 2 and "no release 0.9" in err and "--from" in err
