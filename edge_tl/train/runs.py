"""Run folders: ``runs/<name>/`` and the ``runs/latest`` link."""

from __future__ import annotations

import datetime as _dt
import os
import time
from pathlib import Path

from edge_tl._io import ensure_writable_dir
from edge_tl.errors import CheckpointError, ConfigError

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
