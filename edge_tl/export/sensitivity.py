"""Accuracy-budgeted int8: per-layer sensitivity and automatic float fallback, for any format.

A :class:`QuantBackend` (one per format: :mod:`edge_tl.export.sensitivity_onnx`,
:mod:`edge_tl.export.sensitivity_tflite`) calibrates once and can then build the int8 model with any set of
layers left in float, or with a single layer quantised. On top of that, this module

* ranks layers by the error each adds *alone* (only that layer quantised; relative logit error and top-1
  agreement against the float model), with the activation range statistics that explain it and flags for
  known-bad patterns (hard-swish / squeeze-excite, first and last layers, very wide ranges);
* searches the accuracy budget: quantise everything, measure the drop on held-out images and, while it exceeds
  ``max_drop``, keep the next most sensitive layer in float, one step at a time, recording accuracy, size and
  latency at each step so the trade-off is visible.

The images are the parity gate's own (:func:`edge_tl.parity.fidelity_set`), so the search and the gate agree.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from edge_tl.registry import Registry

WIDE_RANGE_FACTOR = 8.0  # a tensor whose range is this many times the median range is flagged "wide range"
HARD_SWISH_OPS = {"HardSwish", "HardSigmoid", "HARD_SWISH", "HARD_SIGMOID"}
SE_OPS = {"Sigmoid", "LOGISTIC", "GlobalAveragePool", "MEAN"}


@dataclass(frozen=True)
class LayerInfo:
    """One quantisable layer: its name in the format's own terms, op type and output range from calibration."""

    name: str
    op_type: str
    index: int
    out_min: float | None = None
    out_max: float | None = None
    flags: tuple[str, ...] = ()
    label: str = ""  # a readable name (e.g. the PyTorch module path), when the format loses it

    @property
    def range(self) -> float | None:
        if self.out_min is None or self.out_max is None:
            return None
        return float(self.out_max - self.out_min)


class QuantBackend(Protocol):
    """What a format must provide for sensitivity analysis and the budget search."""

    format: str

    def layers(self) -> list[LayerInfo]:
        """Quantisable layers in graph order, with calibration ranges."""
        ...

    def build(self, float_layers: Sequence[str] = (), only: str | None = None) -> bytes:
        """The int8 model with ``float_layers`` kept float; with ``only``, just that layer quantised."""
        ...

    def run(self, content: bytes, pixels: np.ndarray) -> np.ndarray:
        """Float logits of model ``content`` on uint8 NHWC ``pixels``."""
        ...

    def float_logits(self, pixels: np.ndarray) -> np.ndarray:
        """Logits of the float model (the reference)."""
        ...

    def latency_ms(self, content: bytes) -> float:
        """Median single-image latency at 1 thread, in ms."""
        ...


@dataclass(frozen=True)
class LayerSensitivity:
    """The error one layer adds when it alone is quantised."""

    name: str
    op_type: str
    rel_error: float  # ||Δlogits|| / ||logits||, mean over images
    agreement: float  # top-1 agreement with the float model
    out_min: float | None
    out_max: float | None
    flags: tuple[str, ...]
    label: str = ""


@dataclass(frozen=True)
class FallbackStep:
    """One point of the budget search: which layers are float and what that costs and gains."""

    float_layers: tuple[str, ...]
    accuracy: float
    drop: float  # percentage points vs float
    agreement: float
    size_bytes: int
    latency_ms: float | None
    rel_error: float = 0.0  # ||Δlogits|| / ||logits|| against the float model: moves even when top-1 does not


@dataclass(frozen=True)
class BudgetResult:
    """Outcome of the search: the chosen step, whether it fits, and every step tried."""

    format: str
    max_drop: float
    float_accuracy: float
    fits: bool
    chosen: FallbackStep
    steps: tuple[FallbackStep, ...]
    float_latency_ms: float | None = None
    reasons: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def excess(self) -> float:
        """How far the best step still is above the budget (0 when it fits)."""
        return max(0.0, self.chosen.drop - self.max_drop)


@dataclass(frozen=True)
class SensitivityReport:
    """Per-layer sensitivity table (sorted, most sensitive first) plus the full-int8 figures."""

    format: str
    layers: tuple[LayerSensitivity, ...]
    full_int8: FallbackStep
    float_accuracy: float
    images: int
    seconds: float
    methods: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(1) == labels).mean()) if len(labels) else 0.0


def agreement(logits: np.ndarray, ref: np.ndarray) -> float:
    return float((logits.argmax(1) == ref.argmax(1)).mean()) if len(ref) else 1.0


def rel_error(logits: np.ndarray, ref: np.ndarray) -> float:
    num = np.linalg.norm(logits - ref, axis=1)
    den = np.maximum(np.linalg.norm(ref, axis=1), 1e-12)
    return float((num / den).mean())


def flag_layers(layers: list[LayerInfo]) -> list[LayerInfo]:
    """Add flags for known-bad patterns: first/last layer, hard-swish, squeeze-excite, very wide ranges."""
    ranges = [r for r in (lay.range for lay in layers) if r]
    median = float(np.median(ranges)) if ranges else 0.0
    out = []
    for i, lay in enumerate(layers):
        flags = list(lay.flags)
        if i == 0:
            flags.append("first layer")
        if i == len(layers) - 1:
            flags.append("last layer")
        if lay.op_type in HARD_SWISH_OPS:
            flags.append("hard-swish")
        if lay.op_type in SE_OPS:
            flags.append("squeeze-excite")
        if median and lay.range and lay.range > WIDE_RANGE_FACTOR * median:
            flags.append(f"wide range ({lay.range / median:.0f}x median)")
        out.append(LayerInfo(lay.name, lay.op_type, lay.index, lay.out_min, lay.out_max, tuple(dict.fromkeys(flags)),
                             lay.label))
    return out


def _step(backend: QuantBackend, float_layers: Sequence[str], pixels: np.ndarray, labels: np.ndarray,
          ref: np.ndarray, float_acc: float, timed: bool) -> FallbackStep:
    content = backend.build(float_layers)
    logits = backend.run(content, pixels)
    acc = accuracy(logits, labels)
    return FallbackStep(tuple(float_layers), acc, 100.0 * (float_acc - acc), agreement(logits, ref), len(content),
                        backend.latency_ms(content) if timed else None, rel_error(logits, ref))


def layer_sensitivity(backend: QuantBackend, pixels: np.ndarray, labels: np.ndarray,
                      progress: Callable[[str], None] | None = None) -> SensitivityReport:
    """Quantise each layer alone and measure the error it adds; sorted, most sensitive first."""
    t0 = time.perf_counter()
    ref = backend.float_logits(pixels)
    float_acc = accuracy(ref, labels)
    layers = flag_layers(backend.layers())
    rows = []
    for lay in layers:
        if progress:
            progress(lay.name)
        logits = backend.run(backend.build(only=lay.name), pixels)
        rows.append(LayerSensitivity(lay.name, lay.op_type, rel_error(logits, ref), agreement(logits, ref),
                                     lay.out_min, lay.out_max, lay.flags, lay.label))
    rows.sort(key=lambda r: (-r.rel_error, r.agreement))
    full = _step(backend, (), pixels, labels, ref, float_acc, timed=False)
    return SensitivityReport(backend.format, tuple(rows), full, float_acc, len(labels), time.perf_counter() - t0)


def budget_search(backend: QuantBackend, pixels: np.ndarray, labels: np.ndarray, max_drop: float,
                  ranking: Sequence[LayerSensitivity] | None = None, max_float: int | None = None,
                  timed: bool = True, progress: Callable[[str], None] | None = None,
                  min_agreement: float = 0.0) -> BudgetResult:
    """Keep the most sensitive layers in float, one at a time, until the drop fits ``max_drop`` points (and
    top-1 agreement with the float model reaches ``min_agreement``, the parity gate's other int8 criterion).

    Layers are tried in order of the sensitivity ranking (computed if not given); a layer that brings the model
    no closer to the budget (nor to the float model's logits, when the top-1 figures do not move) is put back to
    int8, so the result keeps only layers that paid for themselves.
    """

    def deficit(st: FallbackStep) -> tuple[float, float, float]:
        # budget first, then agreement, then the continuous logit error: a flip on a small validation set is one
        # image, which no single layer may undo alone, while the logit error still shows which layers help.
        return (max(0.0, st.drop - max_drop) + 100.0 * max(0.0, min_agreement - st.agreement), -st.agreement,
                round(st.rel_error, 4))

    ref = backend.float_logits(pixels)
    float_acc = accuracy(ref, labels)
    if ranking is None:
        ranking = layer_sensitivity(backend, pixels, labels).layers
    limit = len(ranking) if max_float is None else min(max_float, len(ranking))
    current = _step(backend, (), pixels, labels, ref, float_acc, timed)
    steps, reasons = [current], {}
    tried = 0
    for row in ranking:
        if deficit(current)[0] == 0.0 or tried >= limit:
            break
        tried += 1
        if progress:
            progress(row.name)
        cand = _step(backend, (*current.float_layers, row.name), pixels, labels, ref, float_acc, timed=False)
        if deficit(cand) < deficit(current) and timed:
            cand = replace(cand, latency_ms=backend.latency_ms(backend.build(cand.float_layers)))
        steps.append(cand)
        if deficit(cand) < deficit(current):
            reasons[row.name] = (f"alone adds {row.rel_error:.3f} relative logit error; keeping it float moves the "
                                 f"drop {current.drop:.2f} -> {cand.drop:.2f} pt, agreement "
                                 f"{100 * current.agreement:.1f} -> {100 * cand.agreement:.1f} %, logit error "
                                 f"{current.rel_error:.3f} -> {cand.rel_error:.3f}")
            current = cand
    if deficit(current)[0] > 0.0 and deficit(current)[:2] >= deficit(steps[0])[:2]:
        current, reasons = steps[0], {}  # no top-1 gain at all: float layers would only cost speed
    return BudgetResult(backend.format, max_drop, float_acc, deficit(current)[0] == 0.0, current, tuple(steps),
                        reasons=reasons)


BACKEND_MODULES = ("edge_tl.export.sensitivity_onnx", "edge_tl.export.sensitivity_tflite")


def _import_backends() -> None:
    # Each backend module registers itself on import; one whose module is missing is skipped.
    import importlib
    import importlib.util

    for mod in BACKEND_MODULES:
        if importlib.util.find_spec(mod) is not None:
            importlib.import_module(mod)


BackendFactory = Callable[..., QuantBackend]
BACKENDS: Registry[BackendFactory] = Registry("quantisation format", load=_import_backends)


def register_backend(format: str) -> Callable[[BackendFactory], BackendFactory]:
    """Register the sensitivity backend factory of ``format``."""
    return BACKENDS.register(format)


def get_backend(format: str) -> BackendFactory:
    """The backend factory for ``format`` (``onnx`` or ``tflite``)."""
    return BACKENDS.get(format)
