"""Every ``stairway`` command README.md and docs/ show is one the CLI has, with options it takes:
each command line of a code block, and each inline command of README's table, is parsed by the
CLI itself (``--help`` appended, so nothing runs); a name or option it does not know fails the
test with the file and the line. The read-only ones then run for real on the example site."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from cli_runner import stairway
from stairway.cli import app
from stairway.quickstart import open_demo, write_site

ROOT = Path(__file__).parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```")
INLINE = re.compile(r"`(stairway [^`]+)`")
runner = CliRunner()


@dataclass(frozen=True)
class Shown:
    """One command as a document shows it."""

    where: str  # file:line
    text: str

    def variants(self) -> list[list[str]]:
        """Its arguments, once per alternative the text spells ``a|b`` in a command's place;
        ``[optional]`` parts are kept (their options must exist too)."""
        text = self.text.replace("\\|", "|").replace("[", " ").replace("]", " ")
        words = shlex.split(text)[1:]
        return _expand(words)


def _expand(words: list[str]) -> list[list[str]]:
    command: Any = typer.main.get_command(app)
    done: list[str] = []
    for index, word in enumerate(words):
        commands = getattr(command, "commands", None)  # a group's subcommands by name
        if commands is None or word.startswith("-"):
            return [done + words[index:]]
        names = word.split("|")
        if len(names) > 1:
            return [v for name in names for v in _expand([*done, name, *words[index + 1 :]])]
        if word not in commands:
            return [done + words[index:]]
        command = commands[word]
        done.append(word)
    return [done]


def shown_commands() -> Iterator[Shown]:
    for document in DOCUMENTS:
        lines = document.read_text("utf-8").splitlines()
        inside = False
        pending = ""
        for number, line in enumerate(lines, start=1):
            if FENCE.match(line):
                inside = not inside
                continue
            where = f"{document.relative_to(ROOT)}:{number}"
            if inside:
                text = (pending + " " + line.split(" #")[0].strip()).strip()
                if text.endswith("\\"):
                    pending = text[:-1]
                    continue
                pending = ""
                if text.startswith("stairway "):
                    yield Shown(where, text)
            elif document.name == "README.md":
                for found in INLINE.findall(line):
                    yield Shown(where, found)


SHOWN = list(shown_commands())


def test_the_documents_show_commands_at_all() -> None:
    assert len(SHOWN) > 60, "the scan found the commands README.md and docs/ show"


@pytest.mark.parametrize("shown", SHOWN, ids=[s.where for s in SHOWN])
def test_every_command_shown_is_one_the_cli_takes(shown: Shown) -> None:
    for args in shown.variants():
        result = runner.invoke(app, [*args, "--help"])
        said = result.output
        assert result.exit_code == 0, f"{shown.where}: `{shown.text}` -> {said[-400:]}"
        assert "No such option" not in said and "No such command" not in said


READ_ONLY = [
    "stairway status",
    "stairway plan --to 2.0.0",
    "stairway verify --to 2.0.0",
    "stairway backups",
    "stairway notes --from 1.0.0 --to 2.0.0",
    "stairway audit show",
    "stairway check",
    "stairway release verify --version 2.0.0",
    "stairway migrate --dry-run",
    "stairway config migrate --to 2.0.0 --dry-run",
    "stairway deltas apply --dry-run",
    "stairway plan --to 2.0.0 --estimate",
]


def test_the_read_only_commands_shown_run_on_the_example_site(tmp_path: Path) -> None:
    shown = {" ".join(s.text.split()) for s in SHOWN}
    demo = write_site(tmp_path / "demo")
    from stairway import operations

    operations.init(open_demo(demo), "1.0.0")
    for command in READ_ONLY:
        base = command.split(" --")[0]
        assert any(s.startswith(base) for s in shown), f"{base} is not shown in the documents"
        code, _, err = stairway(*shlex.split(command)[1:], "--site", str(demo.site_file))
        assert code == 0, f"`{command}` exited {code}: {err[-400:]}"
