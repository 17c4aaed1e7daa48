"""What a finished run leaves on disk: ``model.pt``, ``card.json``, ``history.json``, ``curves.png``,
``confusion.png`` (plus ``split.json`` and ``train_state.pt`` written earlier) and the ``runs/latest`` link."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from edge_tl._io import atomic_write_json

if TYPE_CHECKING:
    from edge_tl.card import ModelCard
    from edge_tl.train.config import TrainResult
    from edge_tl.train.context import Outcome, RunContext
    from edge_tl.train.metrics import ClassReport

FILES = {"model": "model.pt", "card": "card.json", "split": "split.json", "history": "history.json",
         "curves": "curves.png", "confusion": "confusion.png", "state": "train_state.pt"}
VERSIONED = ("edge-tl", "torch", "torchvision", "onnxruntime", "onnx", "numpy", "pillow", "timm")


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def run_metrics(ctx: RunContext, outcome: Outcome, report: ClassReport) -> dict[str, Any]:
    """The card's ``metrics``: test accuracy first, then validation, per class, timing and mode extras."""
    loop = outcome.loop
    return {
        "test_accuracy": _finite(report.accuracy),
        "val_accuracy": _finite(loop.best_acc if loop.best_acc >= 0 else None),
        "best_epoch": loop.best_epoch,
        "epochs_run": loop.epoch,
        "stopped_early": loop.stopped_early,
        "test_images": report.total,
        "per_class_test_accuracy": {r["class"]: _finite(r["accuracy"]) for r in report.per_class()},
        "train_seconds": round(sum(r.get("seconds", 0.0) for r in loop.history), 3),
        "mode": ctx.cfg.mode,
        **{k: v for k, v in outcome.metrics.items() if v is not None},
    }


def make_card(ctx: RunContext, metrics: dict[str, Any]) -> ModelCard:
    """The run's model card (format ``pytorch``, manifest ``split.json``, absolute ``run_dir``)."""
    from edge_tl.card import ModelCard, library_versions, now_iso
    from edge_tl.models import get_spec, weights_label
    from edge_tl.train.context import input_spec

    model = ctx.model
    assert ctx.cfg.backbone is not None
    return ModelCard(
        classes=tuple(ctx.prep.classes), input=input_spec(model), backbone=ctx.cfg.backbone,
        weights=weights_label(get_spec(ctx.cfg.backbone), getattr(model, "weights_info", None)),
        format="pytorch", manifest=FILES["split"], run_dir=str(ctx.run_dir), metrics=metrics,
        versions=library_versions(*VERSIONED), created=now_iso())


def write_outputs(ctx: RunContext, outcome: Outcome) -> TrainResult:
    """Compute the test report, write every output (rank 0 only) and build the :class:`TrainResult`."""
    from edge_tl.models.checkpoint import save_checkpoint
    from edge_tl.train.config import TrainResult
    from edge_tl.train.data import split_summary
    from edge_tl.train.metrics import class_report
    from edge_tl.train.plots import plot_confusion, plot_curves, plot_l2_path
    from edge_tl.train.runs import link_latest

    classes = ctx.prep.classes
    preds = outcome.test_logits.argmax(1).tolist() if len(outcome.test_labels) else []
    report = class_report(classes, outcome.test_labels.tolist(), preds)
    metrics = run_metrics(ctx, outcome, report)
    card = make_card(ctx, metrics)
    run = ctx.run_dir
    history = outcome.loop.history
    if ctx.dist.is_main:
        save_checkpoint(run / FILES["model"], ctx.model, card)
        card.save(run / FILES["card"])
        atomic_write_json(run / FILES["history"], {
            "history": history, "best_epoch": outcome.loop.best_epoch, "stopped_early": outcome.loop.stopped_early,
            "config": ctx.cfg.to_json(), "test": report.to_json(),
            **({"l2_path": outcome.l2_path} if outcome.l2_path is not None else {})})
        title = f"{ctx.cfg.backbone} {ctx.cfg.mode} on {ctx.prep.dataset}"
        if outcome.l2_path:
            plot_l2_path(outcome.l2_path, float(outcome.metrics["head_l2"]), run / FILES["curves"], title=title)
        else:
            plot_curves(history, run / FILES["curves"], title=title)
        plot_confusion(report.matrix, classes, run / FILES["confusion"],
                       title=f"test split: {100 * report.accuracy:.1f}% of {report.total}")
        link_latest(run)
        ctx.reporter.note(f"test accuracy {100 * report.accuracy:.2f}% on {report.total} images; wrote {run}")
    return TrainResult(run_dir=run, card=card, config=ctx.cfg, history=history, test=report, metrics=metrics,
                       split=split_summary(ctx.prep), bad_files=ctx.prep.bad_files,
                       files={k: str(run / v) for k, v in FILES.items()})
