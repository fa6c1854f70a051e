"""What a form of the web UI said: a sentence, its kind and the next action, if there is one.

Pure values. The kind decides how the page shows it: ``ok`` in the quiet box; ``info`` in the
quiet box too, with what to do next (news, not a problem: a newer release); ``error`` and
``halt`` in the alert box (``role="alert"``), each with what to do next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["ok", "info", "error", "halt"]
KINDS: tuple[Kind, ...] = ("ok", "info", "error", "halt")


@dataclass(frozen=True)
class Notice:
    """A sentence for the operator; ``action`` says what to do (a command or a setting)."""

    kind: Kind
    sentence: str
    action: str = ""  # what to do next: a command or a setting

    def describe(self) -> str:
        """The notice as one line of text: the sentence and what to do next."""
        return f"{self.sentence} — {self.action}" if self.action else self.sentence

    def sealed_text(self) -> str:
        """What the page's seal covers: every part, so that none can be swapped in a link."""
        return f"{self.kind}\n{self.sentence}\n{self.action}"


def ok(sentence: str) -> Notice:
    """A form that did what it was asked."""
    return Notice("ok", sentence)


def info(sentence: str, action: str) -> Notice:
    """Something worth knowing that needs no fix, and what to run about it."""
    return Notice("info", sentence, action)


def error(sentence: str, action: str = "") -> Notice:
    """A form that did nothing, and what to change."""
    return Notice("error", sentence, action)


def halt(sentence: str, action: str) -> Notice:
    """A rollout that stopped, and how to resume it."""
    return Notice("halt", sentence, action)


def no_build(version: str) -> Notice:
    """No agent build of ``version`` is published: nothing can be sent."""
    command = f"stairway agent publish agent-{version}.pyz --version {version} --key release.key"
    return error(f"no agent build is published for {version}", f"publish one: {command}")


def halted(reason: str) -> Notice:
    """The rollout is halted for ``reason``."""
    return halt(f"rollout halted: {reason}", "fix the cause, then Save policy to resume")
