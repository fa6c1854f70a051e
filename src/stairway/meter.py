"""A Rich progress bar for long transfers: objects done of the total, the rate, and the ETA."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from stairway import progress


class RateColumn(ProgressColumn):
    """A progress column showing items per second."""

    def render(self, task: Task) -> Text:
        """The task's speed as a number per second, or nothing before there is one."""
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f}/s", style="progress.data.speed")


@contextmanager
def meter(console: Console, label: str) -> Iterator[progress.Progress[None]]:
    """Show a progress bar labelled ``label`` while the block runs; yields its update function.

    A total of 0 or None leaves the bar without one.
    """
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int | None, _item: None, /) -> None:
            bar.update(task, completed=done, total=total or None)

        yield update
