"""How library code tells its caller what it is doing, without printing.

Core functions take a ``reporter: Reporter | None`` and call :func:`of` on it, so ``None`` means silence. Only
``edge_tl.cli`` implements a reporter that writes to a terminal (a rich bar) or to a log (one line per step); a
library caller passes its own or none, and gets no terminal output and no global state changed.

    rep = progress.of(reporter)
    rep.note("hygiene scan: skipping 3 bad files", level="warning")
    with rep.task("extracting features", total=len(files), unit="img") as advance:
        for batch in batches:
            ...
            advance(len(batch))
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Literal, Protocol, runtime_checkable

Level = Literal["info", "warning"]
Advance = Callable[[int], None]


@runtime_checkable
class Reporter(Protocol):
    """What a long-running library call reports: free-text notes and counted tasks."""

    def note(self, message: str, level: Level = "info") -> None:
        """One message for the user (a step started, a file skipped, a setting chosen)."""

    def task(self, description: str, total: int | None, unit: str = "") -> contextlib.AbstractContextManager[Advance]:
        """A counted piece of work: the context yields ``advance(n)``; leaving it ends the task."""


class Silent:
    """The reporter for ``None``: discards everything."""

    def note(self, message: str, level: Level = "info") -> None:
        return None

    @contextlib.contextmanager
    def task(self, description: str, total: int | None, unit: str = "") -> Iterator[Advance]:
        yield lambda n: None


class Recorder:
    """Keeps every note and task in memory (for tests and for callers that want the messages as data)."""

    def __init__(self) -> None:
        self.notes: list[tuple[Level, str]] = []
        self.tasks: list[dict[str, object]] = []

    def note(self, message: str, level: Level = "info") -> None:
        self.notes.append((level, message))

    @contextlib.contextmanager
    def task(self, description: str, total: int | None, unit: str = "") -> Iterator[Advance]:
        rec: dict[str, object] = {"description": description, "total": total, "unit": unit, "done": 0,
                                  "finished": False}
        self.tasks.append(rec)

        def advance(n: int) -> None:
            rec["done"] = int(rec["done"]) + int(n)  # type: ignore[call-overload]

        yield advance
        rec["finished"] = True


class NotesOnly:
    """Passes notes on to ``inner`` and drops its counted tasks (a caller that asked for no progress bars)."""

    def __init__(self, inner: Reporter) -> None:
        self.inner = inner

    def note(self, message: str, level: Level = "info") -> None:
        self.inner.note(message, level)

    @contextlib.contextmanager
    def task(self, description: str, total: int | None, unit: str = "") -> Iterator[Advance]:
        yield lambda n: None


SILENT = Silent()


def of(reporter: Reporter | None, *, tasks: bool = True) -> Reporter:
    """``reporter`` itself, or the silent one for ``None``; with ``tasks=False`` its notes only."""
    rep = SILENT if reporter is None else reporter
    return rep if tasks or rep is SILENT else NotesOnly(rep)
