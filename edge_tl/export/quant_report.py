"""``edge-tl quant-report``: per-layer int8 sensitivity of a run, for ONNX Runtime or LiteRT, and the
accuracy-budget search that the exporter uses for its automatic float fallback.

Calibration uses the run's train split, the search and the sensitivity table use its *validation* split (the test
split stays untouched for the parity gate), all through the one preprocessing path.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edge_tl.card import ModelCard
from edge_tl.errors import DataError, UnknownNameError
from edge_tl.export.registry import CALIB_METHODS as ONNX_CALIB_METHODS
from edge_tl.export.sensitivity import (
    BudgetResult,
    QuantBackend,
    SensitivityReport,
    budget_search,
    get_backend,
    layer_sensitivity,
)
from edge_tl.export.tflite_quant import CALIB_METHODS as TFLITE_CALIB_METHODS

FORMATS = ("onnx", "tflite")
CALIB_METHODS = {"onnx": ONNX_CALIB_METHODS, "tflite": TFLITE_CALIB_METHODS}  # each format's own list


@dataclass(frozen=True)
class QuantReport:
    """Everything ``quant-report`` shows: the sensitivity table, the budget search and the method comparison."""

    run_dir: str
    format: str
    backbone: str
    calib_method: str
    calib_images: int
    eval_split: str
    sensitivity: SensitivityReport
    budget: BudgetResult
    methods: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def eval_images(manifest: Any, spec: Any, n: int, split: str = "val") -> tuple[np.ndarray, np.ndarray, str]:
    """Up to ``n`` decoded images and labels of ``split`` (falls back to ``test`` if the split is empty)."""
    from edge_tl.data.preprocess import load_batch

    used = split
    files, labels = manifest.files(split), manifest.labels(split)
    if not files and split != "test":
        used, files, labels = "test", manifest.files("test"), manifest.labels("test")
    if not files:
        raise DataError("the run has no held-out images to measure the int8 drop on",
                        "retrain with a dataset large enough for val/test splits")
    idx = np.random.default_rng(0).permutation(len(files))[:n]
    return load_batch([files[i] for i in idx], spec), np.asarray([labels[i] for i in idx]), used


def float_artefact(model: Any, card: ModelCard, fmt: str, tmp: Path) -> Any:
    """The float model in ``fmt``: a path for ONNX, flatbuffer bytes for TFLite."""
    if fmt == "onnx":
        import onnx

        from edge_tl.export.onnx_export import export_float_proto

        path = tmp / "float.onnx"
        onnx.save(export_float_proto(model, card.input.size, 18), str(path))
        return path
    from edge_tl.export.tflite_export import convert_float

    return convert_float(model, card.input.size)


def make_backend(model: Any, card: ModelCard, manifest: Any, fmt: str, calib_size: int, method: str,
                 tmp: Path, threads: int = 2) -> QuantBackend:
    """Calibrate once and return the format's backend."""
    from edge_tl.export.calibration import make_calibration

    if fmt not in FORMATS:
        raise UnknownNameError("format", fmt, FORMATS)
    if method not in CALIB_METHODS[fmt]:
        raise UnknownNameError(f"{fmt} calibration method", method, CALIB_METHODS[fmt])
    calibration: Callable[[int], Iterator[np.ndarray]] = make_calibration(manifest, card.input, calib_size)
    factory = get_backend(fmt)
    return factory(float_artefact(model, card, fmt, tmp), card, calibration, method=method, threads=threads)


def _method_row(backend: QuantBackend, pixels: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    from edge_tl.export.sensitivity import accuracy, agreement

    ref = backend.float_logits(pixels)
    logits = backend.run(backend.build(), pixels)
    return {"accuracy": accuracy(logits, labels), "drop": 100 * (accuracy(ref, labels) - accuracy(logits, labels)),
            "agreement": agreement(logits, ref)}


def quant_report(run_dir: str | Path, fmt: str = "onnx", *, calib_size: int = 100, calib_method: str = "minmax",
                 n_eval: int = 200, max_drop: float = 0.5, compare_methods: bool = False, threads: int = 2,
                 progress: Callable[[str], None] | None = None) -> QuantReport:
    """Sensitivity table + budget search (+ optional calibration-method comparison) for one run and format."""
    from edge_tl.data.manifest import manifest_for_card
    from edge_tl.export.api import resolve_checkpoint
    from edge_tl.models.checkpoint import load_checkpoint

    t0 = time.perf_counter()
    ckpt = resolve_checkpoint(run_dir)
    model, card = load_checkpoint(ckpt)
    manifest = manifest_for_card(card, ckpt.parent / "card.json")
    pixels, labels, split = eval_images(manifest, card.input, n_eval)
    with tempfile.TemporaryDirectory(prefix="edge_tl_qr_") as tmp:
        backend = make_backend(model, card, manifest, fmt, calib_size, calib_method, Path(tmp), threads)
        sens = layer_sensitivity(backend, pixels, labels, progress=progress)
        budget = budget_search(backend, pixels, labels, max_drop, ranking=sens.layers, progress=progress)
        float_ms = _float_latency(backend)
        budget = replace(budget, float_latency_ms=float_ms)
        methods: dict[str, dict[str, float]] = {calib_method: _method_row(backend, pixels, labels)}
        if compare_methods:
            for m in CALIB_METHODS[fmt]:
                if m != calib_method:
                    if progress:
                        progress(f"calibrating with {m}")
                    other = make_backend(model, card, manifest, fmt, calib_size, m, Path(tmp), threads)
                    methods[m] = _method_row(other, pixels, labels)
    return QuantReport(str(ckpt.parent), fmt, card.backbone, calib_method, getattr(backend, "calib_images", 0),
                       split, sens, budget, methods, time.perf_counter() - t0)


def _float_latency(backend: QuantBackend) -> float | None:
    content = getattr(backend, "float_content", None)
    if content is None and hasattr(backend, "pre"):
        content = Path(backend.pre).read_bytes()  # type: ignore[attr-defined]
    return backend.latency_ms(content) if content is not None else None


def plot_sensitivity(report: QuantReport, path: Path, top: int = 25) -> Path:
    """Horizontal bar chart of the most sensitive layers (relative logit error when quantised alone)."""
    from matplotlib.figure import Figure

    from edge_tl._io import atomic_path

    rows = list(report.sensitivity.layers[:top])[::-1]
    fig = Figure(figsize=(9, 0.32 * len(rows) + 1.6))  # no pyplot: no global backend or figure state
    ax = fig.subplots()
    colors = ["#d62728" if r.flags else "#1f77b4" for r in rows]
    ax.barh([r.label or short_name(r.name, 48) for r in rows], [r.rel_error for r in rows], color=colors)
    ax.set_xlabel("relative logit error when only this layer is int8")
    chosen = set(report.budget.chosen.float_layers)
    for i, r in enumerate(rows):
        note = ", ".join(r.flags) + (" [kept float]" if r.name in chosen else "")
        if note:
            ax.text(r.rel_error, i, " " + note, va="center", fontsize=7)
    ax.set_title(f"{report.backbone} {report.format} int8 sensitivity (red: flagged pattern)")
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return Path(path)


def short_name(name: str, width: int = 60) -> str:
    """A readable layer name: the last scope segments of long converter-generated names."""
    name = name.replace("torch.nn.modules.", "").rstrip(";")
    tail = name.split("/")[-1]
    return tail if len(tail) <= width else "..." + tail[-(width - 3):]
