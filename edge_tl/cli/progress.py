"""The terminal side of :mod:`edge_tl.progress`: what the commands pass to library code.

On a terminal a task is a transient rich bar (count, rate, elapsed, ETA). When stderr is not a terminal (a CI
log, a pipe, ``2> file``) a task is plain lines: one when it starts, one at most every ``every_s`` seconds while it
runs (done/total, rate, ETA), one when it ends, so a log shows what a long command is doing.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from edge_tl.progress import Advance, Level

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress


def _rate(done: int, elapsed: float, unit: str) -> str:
    return f", {done / elapsed:,.1f} {unit or 'it'}/s" if elapsed > 0 and done else ""


class ConsoleReporter:
    """A :class:`edge_tl.progress.Reporter` that writes to a rich console (stderr by default).

    ``enabled=False`` silences it; ``tasks=False`` keeps the notes and drops the bars (``--quiet``). Tasks
    started inside another task share its display.
    """

    def __init__(self, console: Console | None = None, *, enabled: bool = True, tasks: bool = True,
                 every_s: float = 30.0, terminal: bool | None = None) -> None:
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self.enabled = enabled
        self.tasks = tasks
        self.every_s = every_s
        self.terminal = self.console.is_terminal if terminal is None else terminal
        self._live: Progress | None = None  # the one rich display that nested tasks share

    def note(self, message: str, level: Level = "info") -> None:
        if not self.enabled:
            return
        from rich.markup import escape

        text = escape(message)
        self.console.print(f"[yellow]{text}[/yellow]" if level == "warning" else text, highlight=False,
                           soft_wrap=True)

    @contextlib.contextmanager
    def task(self, description: str, total: int | None, unit: str = "") -> Iterator[Advance]:
        if not (self.enabled and self.tasks):
            yield lambda n: None
            return
        if self.terminal:
            with self._bar(description, total, unit) as advance:
                yield advance
            return
        with self._lines(description, total, unit) as advance:
            yield advance

    @contextlib.contextmanager
    def _bar(self, description: str, total: int | None, unit: str) -> Iterator[Advance]:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        outer = self._live is None
        if self._live is None:
            rate = TextColumn("{task.fields[rate]}", style="cyan")
            self._live = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), rate,
                                  TimeElapsedColumn(), TimeRemainingColumn(), console=self.console, transient=True)
            self._live.start()
        bar = self._live
        tid = bar.add_task(description, total=total, rate="")
        start, done = time.monotonic(), [0]

        def advance(n: int) -> None:
            done[0] += n
            bar.update(tid, advance=n, rate=_rate(done[0], time.monotonic() - start, unit).lstrip(", "))

        try:
            yield advance
        finally:
            bar.remove_task(tid)
            if outer:
                bar.stop()
                self._live = None

    @contextlib.contextmanager
    def _lines(self, description: str, total: int | None, unit: str) -> Iterator[Advance]:
        start = last = time.monotonic()
        done = [0]
        of = f"/{total}" if total else ""

        def status() -> str:
            el = time.monotonic() - start
            eta = ""
            if total and done[0] and done[0] < total:
                eta = f", ETA {el / done[0] * (total - done[0]):.0f} s"
            return f"{done[0]}{of} {unit}".rstrip() + f", {el:.0f} s{_rate(done[0], el, unit)}{eta}"

        def advance(n: int) -> None:
            nonlocal last
            done[0] += n
            now = time.monotonic()
            if now - last >= self.every_s:
                last = now
                self.console.print(f"{description}: {status()}", markup=False, highlight=False, soft_wrap=True)

        self.console.print(f"{description} ...", markup=False, highlight=False, soft_wrap=True)
        yield advance
        self.console.print(f"{description}: done, {status()}", markup=False, highlight=False,
                           soft_wrap=True)
