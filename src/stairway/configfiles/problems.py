"""What a reader or writer of a config file says when it cannot do its part."""

from __future__ import annotations


class Unreadable(Exception):
    """The text does not parse; ``line`` is 1-based when the parser knows it."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


class Unrepresentable(Unreadable):
    """The text parses, but holds a value its format cannot write back as it was meant."""
