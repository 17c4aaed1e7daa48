"""``edge-tl eval``: accuracy, per-class accuracy and confusion matrix of a trained run or of any exported
artefact (``.onnx``, ``.tflite``, ``.xml``) on its run's held-out split or on another dataset with the same classes.

For a run, images go through the same fast path as training (ONNX Runtime backbone + feature cache, checked equal
to the PyTorch backbone), then the run's head; the numbers are those of ``model.pt``. For an artefact they go
through its :class:`~edge_tl.runtimes.base.Runtime`: the numbers are those of the file that ships. Unreadable
images of another dataset are skipped and counted (the hygiene scan), never a crash on the first one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_tl.errors import DataError

if TYPE_CHECKING:
    from edge_tl.card import ModelCard
    from edge_tl.models.base import EdgeModel
    from edge_tl.progress import Reporter
    from edge_tl.train.metrics import ClassReport

SPLIT_CHOICES = ("test", "val", "train", "all")


@dataclass(frozen=True)
class EvalData:
    """What to evaluate on: files, labels in the model's class order, content hashes, and where they came from."""

    files: list[Path]
    labels: list[int]
    shas: list[str]
    source: str
    bad_files: int = 0
    skipped: tuple[dict[str, str], ...] = ()  # the bad files: path, kind, reason


@dataclass(frozen=True)
class EvalResult:
    """Accuracy report of one model on one dataset/split."""

    model: str
    source: str
    report: ClassReport
    seconds: float
    bad_files: int = 0
    plot: str | None = None
    runtime: str | None = None
    skipped: tuple[dict[str, str], ...] = ()

    @property
    def accuracy(self) -> float:
        return self.report.accuracy

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "runtime": self.runtime, "data": self.source, "seconds": round(self.seconds, 3),
                "bad_files": self.bad_files, "skipped": list(self.skipped), "plot": self.plot,
                **self.report.to_json()}


BATCH = 64


def checkpoint_path(model: str | Path) -> Path:
    """A run folder (or ``runs/latest``) or a ``model.pt`` -> the checkpoint file."""
    p = Path(model).expanduser()
    return p / "model.pt" if p.is_dir() else p


def is_artefact(model: str | Path) -> bool:
    """Whether ``model`` names an exported file (anything but a run folder or a ``.pt`` checkpoint)."""
    p = Path(model).expanduser()
    return not p.is_dir() and p.suffix.lower() not in ("", ".pt")


def artefact_data(card: ModelCard, path: Path, data: str | None, data_root: str | None, split: str,
                  progress: bool, reporter: Reporter | None = None) -> EvalData:
    """``data`` if given, else the split of the run the artefact was exported from (its card's ``run_dir``)."""
    if data:
        return data_from_dataset(card, data, data_root, progress, reporter)
    run = Path(card.run_dir) if card.run_dir else None
    if run is None or not (run / "card.json").exists():
        raise DataError(f"{path.name} was exported from a run that is not here ({card.run_dir or 'unknown'})",
                        "pass --data with a folder of class subfolders")
    return data_from_run(card, run / "model.pt", split)


def predict_artefact(rt: Any, files: list[Path], tick: Any = None) -> Any:
    """Logits ``(N, C)`` (numpy) of ``files`` through the runtime ``rt``, decoded in batches of :data:`BATCH`."""
    import numpy as np

    from edge_tl.data.preprocess import load_batch

    out = []
    for i in range(0, len(files), BATCH):
        chunk = files[i:i + BATCH]
        out.append(rt(load_batch(chunk, rt.card.input)))
        if tick is not None:
            tick(len(chunk))
    return np.concatenate(out) if out else np.zeros((0, rt.card.num_classes), np.float32)


def evaluate_artefact(model: str | Path, data: str | None = None, data_root: str | None = None,
                      split: str = "test", plot: str | Path | None = None, progress: bool = True,
                      threads: int | None = None, reporter: Reporter | None = None) -> EvalResult:
    """Evaluate an exported file with its runtime on ``data`` (or its run's ``split``); write the confusion PNG
    (default: ``<file>.eval_confusion.png`` beside it). The scan and the predictions are tasks on ``reporter``
    unless ``progress`` is off."""
    from edge_tl import progress as _progress
    from edge_tl.runtimes import load
    from edge_tl.train.metrics import class_report
    from edge_tl.train.plots import plot_confusion

    path = Path(model).expanduser()
    rt = load(path, threads=threads)
    ed = artefact_data(rt.card, path, data, data_root, split, progress, reporter)
    t0 = time.perf_counter()
    with _progress.of(reporter, tasks=progress).task(f"evaluating {path.name}", len(ed.files), "img") as tick:
        logits = predict_artefact(rt, ed.files, tick)
    report = class_report(rt.card.classes, ed.labels, logits.argmax(1).tolist())
    seconds = time.perf_counter() - t0
    png = Path(plot) if plot else path.with_name(path.name + ".eval_confusion.png")
    plot_confusion(report.matrix, rt.card.classes, png,
                   title=f"{path.name} on {ed.source}: {100 * report.accuracy:.1f}% of {report.total}")
    return EvalResult(str(path), ed.source, report, seconds, ed.bad_files, str(png), rt.name, ed.skipped)


def data_from_run(card: ModelCard, ckpt: Path, split: str) -> EvalData:
    """The run's own split (from ``split.json`` beside the card)."""
    from edge_tl.data.manifest import manifest_for_card

    m = manifest_for_card(card, ckpt.parent / "card.json")
    if tuple(m.classes) != tuple(card.classes):
        raise DataError("the run's split.json and model disagree on the classes", "train the run again")
    items = m.select(None if split == "all" else split)
    if not items:
        raise DataError(f"the run's '{split}' split is empty", "choose another --split")
    m.require_intact(items, f"run's '{split}' split")
    return EvalData([m.path_of(it) for it in items], [it.label for it in items], [it.sha256 for it in items],
                    f"{m.dataset or 'run'}:{split}")


def data_from_dataset(card: ModelCard, data: str, data_root: str | None, progress: bool = True,
                      reporter: Reporter | None = None) -> EvalData:
    """Every usable image of another dataset; its classes must be the model's (any order)."""
    from edge_tl import progress as _progress
    from edge_tl.data.hygiene import scan
    from edge_tl.data.sources import resolve_dataset

    tasks = _progress.of(reporter, tasks=progress)
    ds = resolve_dataset(data, Path(data_root) if data_root else None, reporter=tasks)
    if not ds.files:
        raise DataError(f"dataset {ds.name or data} has no images", "point --data at a folder of class subfolders")
    if set(ds.classes) != set(card.classes):
        missing = sorted(set(card.classes) - set(ds.classes))
        extra = sorted(set(ds.classes) - set(card.classes))
        detail = "; ".join(s for s in (f"missing {missing}" if missing else "", f"unknown {extra}" if extra else "")
                           if s)
        raise DataError(f"the classes of {ds.name or data} do not match the model's ({detail})",
                        f"the model knows: {', '.join(card.classes)}")
    remap = [card.classes.index(c) for c in ds.classes]
    report = scan(ds.files, ds.labels, classes=ds.classes, reporter=tasks)
    if not report.records:
        raise DataError(f"dataset {ds.name or data} has no readable images", f"run `edge-tl data check {data}`")
    recs = report.records
    skipped = tuple({"path": str(b.path), "kind": b.kind, "reason": b.reason} for b in report.bad)
    return EvalData([r.path for r in recs], [remap[r.label] for r in recs], [r.sha256 for r in recs],
                    ds.name or str(data), len(report.bad), skipped)


def predict(model: EdgeModel, card: ModelCard, files: list[Path], shas: list[str], engine: str = "onnx",
            progress: Any = None) -> Any:
    """Logits ``(N, C)`` (torch, CPU) of the images: cached/ONNX backbone features, then the run's head."""
    import torch

    from edge_tl.train.features import extract

    feats, _ = extract(model, card.input, files, shas, engine=engine, progress=progress)
    with torch.no_grad():
        return model.eval().forward_head(torch.from_numpy(feats[:, 0]))


def evaluate(model: str | Path, data: str | None = None, data_root: str | None = None, split: str = "test",
             engine: str = "onnx", plot: str | Path | None = None, progress: bool = True,
             reporter: Reporter | None = None) -> EvalResult:
    """Evaluate a run (folder or ``model.pt``) or an exported file (:func:`evaluate_artefact`) on its ``split``
    or on ``data``; write the confusion PNG. The scan and the predictions are tasks on ``reporter`` unless
    ``progress`` is off; nothing is printed."""
    from edge_tl import progress as _progress
    from edge_tl.errors import check_choice
    from edge_tl.models.checkpoint import load_checkpoint
    from edge_tl.train.metrics import class_report
    from edge_tl.train.plots import plot_confusion

    check_choice("split", split, SPLIT_CHOICES)
    if is_artefact(model):
        return evaluate_artefact(model, data, data_root, split, plot, progress, reporter=reporter)
    ckpt = checkpoint_path(model)
    net, card = load_checkpoint(ckpt)
    ed = (data_from_dataset(card, data, data_root, progress, reporter) if data
          else data_from_run(card, ckpt, split))
    t0 = time.perf_counter()
    with _progress.of(reporter, tasks=progress).task("evaluating", len(ed.files), "img") as tick:
        logits = predict(net, card, ed.files, ed.shas, engine, tick)
    report = class_report(card.classes, ed.labels, logits.argmax(1).tolist())
    seconds = time.perf_counter() - t0
    png = Path(plot) if plot else ckpt.parent / "eval_confusion.png"
    plot_confusion(report.matrix, card.classes, png,
                   title=f"{ed.source}: {100 * report.accuracy:.1f}% of {report.total}")
    return EvalResult(str(ckpt), ed.source, report, seconds, ed.bad_files, str(png), skipped=ed.skipped)
