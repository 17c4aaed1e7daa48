"""The training entry point: :class:`TrainConfig` in, :class:`TrainResult` out, a run folder on disk.

``train(cfg)`` resolves the data (hygiene scan, stratified split), builds the model, trains in one of the modes
(:data:`edge_tl.train.modes.RUNNERS`), and writes ``runs/<name>/``: ``model.pt``, ``card.json``, ``split.json``,
``history.json``, ``curves.png``, ``confusion.png``, ``train_state.pt``, then points ``runs/latest`` at it.
The same call works under ``torchrun`` (DistributedDataParallel; rank 0 writes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from edge_tl.errors import CheckpointError
from edge_tl.train.config import (
    DEFAULT_BACKBONE,
    DEFAULT_UNFREEZE,
    MODE_DEFAULTS,
    MODES,
    ModeDefaults,
    TrainConfig,
    TrainResult,
)

if TYPE_CHECKING:
    from edge_tl.progress import Reporter

__all__ = ["DEFAULT_BACKBONE", "DEFAULT_UNFREEZE", "MODES", "MODE_DEFAULTS", "ModeDefaults", "TrainConfig",
           "TrainResult", "merge_resume", "train"]


def merge_resume(cfg: TrainConfig, saved: dict[str, Any]) -> TrainConfig:
    """The interrupted run's config, checked against what was asked now; only runtime knobs may change."""
    old = TrainConfig.from_json(saved["config"])
    if cfg.backbone is not None and cfg.backbone != old.backbone:
        raise CheckpointError(f"cannot resume: the run was trained with backbone '{old.backbone}', "
                              f"not '{cfg.backbone}'", "drop --backbone, or train a new run with another --out")
    if cfg.mode is not None and cfg.mode != old.mode:
        raise CheckpointError(f"cannot resume: the run was trained in mode '{old.mode}', not '{cfg.mode}'",
                              "drop --mode, or train a new run with another --out")
    return replace(old, resume=True, out=cfg.out or old.out, device=cfg.device, precision=cfg.precision,
                   unfreeze=old.unfreeze if old.mode == "finetune" else None,
                   workers=cfg.workers if cfg.workers is not None else old.workers, progress=cfg.progress,
                   data=cfg.data if cfg.data != "sample" or old.data == "sample" else old.data,
                   data_root=cfg.data_root or old.data_root)


def train(cfg: TrainConfig, *, reporter: Reporter | None = None,
          on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> TrainResult:
    """Train a classifier as ``cfg`` says and write its run folder; see the module docstring.

    Progress goes to ``reporter`` (:class:`edge_tl.progress.Reporter`): notes (the data, the head fit, each
    epoch's numbers) and counted tasks (hygiene scan, features, each epoch's images); ``None`` is silent, and
    ``cfg.progress=False`` keeps the notes only. Under DDP only rank 0 reports. Nothing is printed and no global
    state (such as the matplotlib backend) is changed. ``on_epoch(epoch, row)`` is called after each epoch's
    resumable state is saved (tests raise KeyboardInterrupt there to simulate Ctrl-C).
    """
    from edge_tl import progress
    from edge_tl.models import get_spec
    from edge_tl.train import ddp, modes, runs, state
    from edge_tl.train.device import resolve_device, resolve_precision
    from edge_tl.train.outputs import write_outputs

    dist = ddp.env_dist()
    rep = progress.of(reporter if dist.is_main else None)
    saved = None
    if cfg.resume:
        run_dir = runs.resume_dir(cfg.out)
        saved = state.load_state(run_dir)
        cfg = replace(merge_resume(cfg, saved), out=str(run_dir))
    cfg.validate()
    if dist.is_main and not cfg.resume:
        from edge_tl.train.probe import sgd_settings_note

        note = sgd_settings_note(cfg)
        if note:
            rep.note(note, level="warning")
    cfg = cfg.resolved()
    assert cfg.backbone is not None and cfg.mode is not None
    get_spec(cfg.backbone)  # unknown backbone -> UnknownNameError with the closest name
    device = resolve_device(cfg.device, dist.local_rank)
    precision = resolve_precision(cfg.precision, device)
    ddp.init(dist, device)
    ctx = None
    try:
        ctx = modes.setup(cfg, dist, device, precision, rep, saved, on_epoch)
        outcome = modes.RUNNERS[cfg.mode](ctx)
        result = write_outputs(ctx, outcome)  # rank 0 writes; every rank returns the result
        ddp.barrier(dist)
        return result
    except KeyboardInterrupt:
        if dist.is_main:
            if ctx is not None and (ctx.run_dir / state.STATE_FILE).is_file():
                rep.note(f"interrupted: the last finished epoch is saved; continue with "
                         f"`edge-tl train --out {ctx.run_dir} --resume`", level="warning")
            else:
                rep.note("interrupted before training started: run the same command again "
                         "(features computed so far are cached)", level="warning")
        raise
    finally:
        ddp.shutdown()
