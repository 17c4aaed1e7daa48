"""The training modes behind ``train()``: ``features`` (head fitted on cached frozen features), ``finetune`` (last
N blocks unfrozen) and ``full``, both starting from the linear probe's head; plus the run set-up before them
(the outputs after them are :mod:`edge_tl.train.outputs`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_tl.errors import CheckpointError, EdgeTLError
from edge_tl.train import ddp
from edge_tl.train.context import Outcome, RunContext, input_spec

if TYPE_CHECKING:
    import torch

    from edge_tl.models.base import EdgeModel
    from edge_tl.progress import Reporter
    from edge_tl.train.config import TrainConfig
    from edge_tl.train.ddp import Dist
    from edge_tl.train.device import Precision
    from edge_tl.train.loop import LoopState, Task


def setup(cfg: TrainConfig, dist: Dist, device: torch.device, precision: Precision, reporter: Reporter,
          saved: dict[str, Any] | None, on_epoch: Callable[[int, dict[str, float]], None] | None) -> RunContext:
    """Run folder, data (scan + split, or the saved split on resume) and the model."""

    from edge_tl.train import data, runs

    assert cfg.backbone is not None
    if cfg.out:
        run_dir = Path(cfg.out).expanduser()
    else:
        name = runs.default_run_name(cfg.backbone, data.dataset_name(cfg.data, cfg.data_root))
        run_dir = Path("runs") / ddp.broadcast_object(dist, name)
    fresh = not run_dir.exists()
    if dist.is_main:
        run_dir = runs.prepare_run_dir(run_dir, cfg.resume, cfg.force)
    ddp.barrier(dist)
    run_dir = run_dir.resolve()
    try:
        prep, model = _data_and_model(cfg, dist, run_dir, saved, reporter)
    except EdgeTLError:
        if fresh and dist.is_main:  # a bad --data / --weights leaves no half-made run folder behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    reporter.note(f"{cfg.mode} training of {cfg.backbone} on {prep.dataset}: {len(prep.classes)} "
                  f"classes, {len(prep.train)} train / {len(prep.val)} val / {len(prep.test)} test images, "
                  f"{input_spec(model).size} px -> {run_dir}")
    return RunContext(cfg, dist, device, precision, reporter, run_dir, prep, model, saved, on_epoch)


def _data_and_model(cfg: TrainConfig, dist: Dist, run_dir: Path, saved: dict[str, Any] | None,
                    reporter: Reporter) -> tuple[Any, EdgeModel]:
    import torch

    from edge_tl import progress
    from edge_tl.models import create_model
    from edge_tl.train import data

    if cfg.resume:
        prep = data.load_split(run_dir)
        data.check_resume_classes(prep.manifest, cfg.data, cfg.data_root)
        if saved is not None and tuple(saved["classes"]) != prep.classes:
            raise CheckpointError("cannot resume: split.json and train_state.pt disagree on the classes",
                                  "train a new run with another --out")
    else:
        if dist.is_main:
            prep = data.scan_and_split(cfg.data, cfg.data_root, cfg.seed, cfg.val_frac, cfg.test_frac, reporter,
                                       progress=cfg.progress, split=cfg.split)
            prep.manifest.save(run_dir / data.SPLIT_FILE)
        ddp.barrier(dist)
        if not dist.is_main:
            prep = data.load_split(run_dir)
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.backbone, num_classes=len(prep.classes), weights=cfg.weights, img_size=cfg.img_size,
                         reporter=progress.of(reporter, tasks=cfg.progress))
    return prep, model


def fit_task(ctx: RunContext, bare: torch.nn.Module, task: Task, groups: list[dict[str, Any]]) -> LoopState:
    """Optimiser + schedule + (resumed) state around :func:`edge_tl.train.loop.fit`; loads the best weights."""
    from edge_tl.train import loop as L
    from edge_tl.train import state
    from edge_tl.train.device import make_scaler, oom_guard

    cfg = ctx.cfg
    assert cfg.epochs is not None and cfg.patience is not None and cfg.weight_decay is not None
    optimizer = L.make_optimizer(groups, cfg.weight_decay)
    steps = L.steps_per_epoch(task)
    from edge_tl.train.config import MODE_DEFAULTS

    warm = max(1, round(MODE_DEFAULTS[cfg.mode or "features"].warmup_epochs * steps))
    scheduler = L.cosine_with_warmup(optimizer, steps * cfg.epochs, warm)
    scaler = make_scaler(ctx.precision)
    trainer = L.Trainer(optimizer, scheduler, scaler)
    loop_state = L.LoopState()
    best: dict[str, Any] = {"sd": state.tensors_to_cpu(bare.state_dict())}
    if ctx.saved is not None:
        s = ctx.saved
        bare.load_state_dict(s["model"])
        optimizer.load_state_dict(s["optimizer"])
        scheduler.load_state_dict(s["scheduler"])
        if "scaler" in s:
            scaler.load_state_dict(s["scaler"])
        loop_state = L.LoopState.from_json(s["loop"])
        best["sd"] = s["best"]
        state.set_rng_state(s["rng"])
        ctx.reporter.note(f"resuming {ctx.run_dir.name} after epoch {loop_state.epoch}")

    def keep_best() -> None:
        best["sd"] = state.tensors_to_cpu(bare.state_dict())

    def save(ls: LoopState) -> None:
        if ctx.dist.is_main:
            state.save_state(ctx.run_dir, {
                "config": cfg.to_json(), "classes": list(ctx.prep.classes), "backbone": cfg.backbone,
                "mode": cfg.mode, "model": state.tensors_to_cpu(bare.state_dict()), "best": best["sd"],
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(), "loop": ls.to_json(), **ctx.extra_state})
        ddp.barrier(ctx.dist)

    def on_epoch(epoch: int, row: dict[str, float]) -> None:
        ctx.reporter.note(
            f"epoch {epoch:>3}/{cfg.epochs}  train loss {row['train_loss']:.4f} acc {100 * row['train_acc']:5.1f}%"
            f"  val loss {row['val_loss']:.4f} acc {100 * row['val_acc']:5.1f}%  lr {row['lr']:.2e}"
            f"  {row['images_per_s']:,.0f} img/s")
        if ctx.on_epoch:
            ctx.on_epoch(epoch, row)

    if ctx.saved is None:
        save(loop_state)  # epoch 0: even an interrupt in the first epoch leaves something to resume
    with oom_guard(cfg.batch_size or 0):
        loop_state = L.fit(task, trainer, loop_state, epochs=cfg.epochs, patience=cfg.patience, dist=ctx.dist,
                           device=ctx.device, keep_best=keep_best, save_state=save, on_epoch=on_epoch,
                           progress=lambda e, n: ctx.tasks.task(f"epoch {e}/{cfg.epochs}", n, "img"))
    if loop_state.stopped_early:
        ctx.reporter.note(f"early stop after epoch {loop_state.epoch}: no better val accuracy for "
                          f"{cfg.patience} epochs")
    bare.load_state_dict(best["sd"])
    return loop_state


def run_features(ctx: RunContext) -> Outcome:
    """Frozen backbone: the head fitted to convergence on cached features (:mod:`edge_tl.train.probe`)."""
    from edge_tl.train.probe import run_features as run

    return run(ctx)


def run_images(ctx: RunContext) -> Outcome:
    """``finetune`` (last ``unfreeze`` blocks + head, backbone at a lower lr) or ``full`` training on images."""
    import torch

    from edge_tl.train.augment import DEFAULT_AUG
    from edge_tl.train.config import MODE_DEFAULTS
    from edge_tl.train.probe import init_head
    from edge_tl.train.tasks import ImageDataset, ImageTask

    cfg, model, prep = ctx.cfg, ctx.model, ctx.prep
    # a resumed run restores its own head (and the probe's metrics) from the saved state
    probe_metrics = init_head(ctx) if ctx.saved is None else dict(ctx.saved.get("probe_metrics", {}))
    ctx.extra_state["probe_metrics"] = probe_metrics
    if cfg.mode == "finetune":
        assert cfg.unfreeze is not None
        model.freeze(except_last=cfg.unfreeze)
    else:
        model.unfreeze()
    model.to(ctx.device).to(memory_format=torch.channels_last)
    scale = MODE_DEFAULTS[cfg.mode or "full"].backbone_lr_scale
    spec = input_spec(model)
    backbone = [p for p in model.features.parameters() if p.requires_grad]
    head = [p for p in model.head.parameters() if p.requires_grad]
    assert cfg.lr is not None
    groups = [{"params": backbone, "lr": cfg.lr * scale}, {"params": head, "lr": cfg.lr}]

    def dataset(name: str, aug: bool) -> ImageDataset:
        part = prep.split(name)
        return ImageDataset(part.files, part.labels, part.shas, spec, DEFAULT_AUG if aug else None, cfg.seed)

    task = ImageTask(ddp.wrap(model, ctx.dist, ctx.device), dataset("train", True), dataset("val", False),
                     batch_size=cfg.batch_size or 32, seed=cfg.seed, dist=ctx.dist, device=ctx.device,
                     precision=ctx.precision, workers=cfg.workers or 0, label_smoothing=cfg.label_smoothing)
    loop_state = fit_task(ctx, model, task, groups)
    model.eval()
    logits, labels = task.predict(dataset("test", False), shard=False)
    model.to("cpu").to(memory_format=torch.contiguous_format)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Outcome(loop_state, logits, labels, {"trainable_parameters": trainable, **probe_metrics,
                                                "precision": ctx.precision.name, "device": str(ctx.device)})


RUNNERS: dict[str, Callable[[RunContext], Outcome]] = {
    "features": run_features, "finetune": run_images, "full": run_images,
}
