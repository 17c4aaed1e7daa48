"""Run folders (``runs/<name>/``, ``runs/latest``) and the progress display of training."""

from __future__ import annotations

import datetime as _dt
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_tl._io import ensure_writable_dir
from edge_tl.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

LATEST = "latest"


def default_run_name(backbone: str, dataset: str) -> str:
    """``<backbone>-<dataset>-<UTC timestamp>``."""
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S")
    return f"{backbone}-{dataset}-{stamp}"


def resume_dir(out: str | None) -> Path:
    """The run to resume: ``--out`` or, without it, whatever ``runs/latest`` points at."""
    if out:
        return Path(out).expanduser()
    latest = Path("runs") / LATEST
    if not latest.exists():
        raise CheckpointError("nothing to resume: no --out given and runs/latest does not exist",
                              "pass --out runs/NAME of the interrupted run")
    return latest.resolve()


def prepare_run_dir(path: Path, resume: bool, force: bool = False) -> Path:
    """Create the run folder; refuse to train a new run into a folder that already holds one (unless
    ``force``: then the old run's files are replaced and its resumable state dropped)."""
    path = Path(path).expanduser()
    if force and not resume:
        for name in ("train_state.pt", "model.pt"):
            (path / name).unlink(missing_ok=True)
    if not resume and (path / "model.pt").exists():
        raise ConfigError(f"{path} already holds a trained run",
                          "choose another --out, add --force to replace it, or --resume to continue it")
    if not resume and (path / "train_state.pt").exists():
        raise ConfigError(f"{path} holds an interrupted run",
                          "add --resume to continue it, --force to start over, or choose another --out")
    ensure_writable_dir(path)
    return path.resolve()


def link_latest(run_dir: Path) -> Path:
    """Point ``<parent>/latest`` at ``run_dir``, atomically (new link under a temp name, then rename)."""
    run_dir = Path(run_dir)
    link = run_dir.parent / LATEST
    if link.exists() and not link.is_symlink():
        return link  # a real folder named 'latest': never replace user data
    tmp = run_dir.parent / f".latest.{os.getpid()}.{time.time_ns()}"
    os.symlink(run_dir.name, tmp)
    os.replace(tmp, link)
    return link


def make_progress(console: Console, enabled: bool = True, transient: bool = False) -> Progress:
    """A rich progress display with an images/s column."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f} img/s" if speed else "", style="cyan")

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=transient,
                    disable=not enabled)


def ticker(progress: Progress, description: str, total: int) -> Callable[[int], None]:
    """Add a task and return ``advance(n)`` for it."""
    task = progress.add_task(description, total=total)
    return lambda n: progress.advance(task, n)
