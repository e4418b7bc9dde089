"""A rich progress bar on stderr for long jobs (export, import, verify, stick sync).

Fed with the node's progress items (`{"phase", "done", "total", "unit"}`, the same whether
the job runs here or in the running node); nothing is drawn when stderr is not a terminal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

Show = Callable[[Any], None]


@contextmanager
def progress_bar(what: str) -> Iterator[Show]:
    console = Console(stderr=True)
    if not console.is_terminal:
        yield lambda _: None
        return
    columns = [
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"), TimeRemainingColumn(),
    ]  # fmt: skip
    with Progress(*columns, console=console, transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def show(step: Any) -> None:
            if not isinstance(step, dict):
                return
            phase = str(step.get("phase") or what)
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=None, unit=step.get("unit", ""))
            bar.update(tasks[phase], completed=step.get("done", 0), total=step.get("total"))

        yield show
