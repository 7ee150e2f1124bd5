"""Progress bars for long work: rich on a terminal, silent otherwise or under --quiet."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

QUIET_ENV = "MLOOP_QUIET"


class Bar(Protocol):
    def advance(self, amount: float = 1) -> None: ...


class _NullBar:
    def advance(self, amount: float = 1) -> None:
        return None


class _RichBar:
    def __init__(self, prog: object, task: object) -> None:
        self._prog = prog
        self._task = task

    def advance(self, amount: float = 1) -> None:
        self._prog.advance(self._task, amount)  # type: ignore[attr-defined]


def enabled(quiet: bool = False) -> bool:
    """Whether to draw: not quiet, MLOOP_QUIET unset, and stderr is a terminal."""
    return not quiet and not os.environ.get(QUIET_ENV) and sys.stderr.isatty()


@contextmanager
def progress(total: float, description: str, *, unit: str = "items",
             quiet: bool = False) -> Iterator[Bar]:
    """A progress bar for ``total`` units of work; bytes get a transfer-speed column."""
    if not enabled(quiet):
        yield _NullBar()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from mloop.core.printable import printable

    # The description names a user's file: shown as text, never parsed as markup.
    columns: list[object] = [TextColumn("{task.description}", markup=False), BarColumn()]
    if unit == "bytes":
        columns += [DownloadColumn(), TransferSpeedColumn()]
    else:
        columns += [MofNCompleteColumn()]
    columns.append(TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as prog:  # type: ignore[arg-type]
        task = prog.add_task(printable(description, one_line=True), total=total)
        yield _RichBar(prog, task)
