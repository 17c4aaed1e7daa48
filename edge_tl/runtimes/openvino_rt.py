"""OpenVINO: ``.xml`` IR (and ``.onnx`` / ``.tflite`` files read directly) behind the
:class:`~edge_tl.runtimes.base.Runtime` protocol, on the CPU device.

The card comes from the IR's ``rt_info`` (key :data:`~edge_tl.card.CARD_KEY`), from the ONNX/TFLite file's own
metadata, or from the ``.card.json`` sidecar. The inference precision is always explicit: on CPUs with AMX-BF16
OpenVINO would otherwise run an fp32 model in bf16. ``precision`` (``f32``, ``bf16``, ``f16``, ``int8``) defaults
to the one the card was verified at (OpenVINO IR), else ``int8`` for a quantised graph (FakeQuantize or
QDQ, the remaining layers in f32) and ``f32`` otherwise; after compilation the plugin's
``INFERENCE_PRECISION_HINT`` is read back and a CPU that would run something else raises. ``threads`` sets
``INFERENCE_NUM_THREADS`` (one stream, latency hint); threads are pinned (``ENABLE_CPU_PINNING``) when the
process runs on exactly ``threads`` cores, as bench's mobile profile arranges, or when ``pin=True``.

The model is compiled for batch 1 at load time (the deployment case); other batch sizes are compiled on first
use, from a reshaped copy, and kept. :meth:`OpenVinoRuntime.from_model` runs an in-memory ``ov.Model`` (a
candidate built during export); with ``dynamic_batch`` it is compiled once, its batch dimension left dynamic,
and that one compilation serves every batch size (one compile per candidate in a search).
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edge_tl._cpu import int8_overflow_risk
from edge_tl.card import CARD_KEY, PRECISIONS, ModelCard
from edge_tl.data.preprocess import normalize
from edge_tl.errors import ArtifactError, BackendMissingError, ConfigError
from edge_tl.runtimes import check_pixels, default_threads, run_batched, warn_if_saturated
from edge_tl.runtimes.base import FloatOutputs, embedded_or_sidecar, register_card_reader, register_runtime

DEVICE = "CPU"
# edge-tl precision -> the plugin's INFERENCE_PRECISION_HINT; int8 graphs run their non-quantised layers in f32.
HINTS = {"f32": "f32", "bf16": "bf16", "f16": "f16", "int8": "f32"}
QUANT_OPS = {"FakeQuantize", "FakeConvert"}
_MAX_COMPILED = 4  # batch sizes kept compiled at once
_HINT = "re-export it with edge-tl export --format openvino"


class OpenVinoRuntime(FloatOutputs):
    """A model compiled by OpenVINO for the CPU: pixels ``(N, H, W, 3)`` -> float32 logits ``(N, C)``."""

    name = "openvino"

    def __init__(self, core: Any, model: Any, card: ModelCard, path: Path, threads: int, precision: str,
                 config: dict[str, Any], dynamic_batch: bool = False) -> None:
        self.core, self.model, self.card, self.path = core, model, card, Path(path)
        self.threads, self.precision, self.config = threads, precision, config
        self.layout = card.input.layout
        self.dynamic_batch = dynamic_batch
        self._compiled: dict[int, Any] = {}
        self._requests: dict[int, Any] = {}
        self.compiled(1)

    @classmethod
    def from_model(cls, model: Any, card: ModelCard, threads: int | None = None, precision: str | None = None, *,
                   dynamic_batch: bool = False, core: Any = None, path: Path | str = "<memory>") -> OpenVinoRuntime:
        """A runtime over an in-memory ``ov.Model`` described by ``card`` (its input and output must match it),
        compiled as :func:`load_openvino` compiles a file; ``precision`` defaults to ``int8`` for a quantised
        graph and ``f32`` otherwise. ``dynamic_batch``: one compilation of the model as it is serves every batch
        size (its batch dimension must be dynamic)."""
        import openvino as ov

        path = Path(path)
        _check_io(model, card, path)
        quantized = is_quantized(model)
        prec = _check_precision(precision or ("int8" if quantized else "f32"), quantized, path)
        n = default_threads(threads)
        if dynamic_batch and model.inputs[0].get_partial_shape()[0].is_static:
            raise ConfigError(f"{path}: the model's batch dimension is static", "use dynamic_batch=False")
        return cls(core or ov.Core(), model, card, path, n, prec, _config(prec, n, None), dynamic_batch)

    def compiled(self, n: int) -> Any:
        """The model compiled for a batch of ``n`` (compiled on first use; with :attr:`dynamic_batch`, one
        compilation for every ``n``)."""
        if self.dynamic_batch:
            n = 0
        if n not in self._compiled:
            model = self.model
            if n and not _batch_is(model, n):
                model = model.clone()
                try:
                    model.reshape({model.inputs[0]: _batched_shape(model, n)})
                except RuntimeError as exc:
                    raise ArtifactError(f"{self.path}: OpenVINO cannot run a batch of {n} ({_first_line(exc)})",
                                        "pass one image at a time") from None
            if len(self._compiled) >= _MAX_COMPILED:
                drop = next(k for k in self._compiled if k != 1)
                self._compiled.pop(drop)
                self._requests.pop(drop, None)
            self._compiled[n] = _compile(self.core, model, self.config, self.path, self.precision)
        return self._compiled[n]

    def request(self, n: int) -> Any:
        """The (reused) infer request of the batch-``n`` compilation."""
        if self.dynamic_batch:
            n = 0
        if n not in self._requests:
            self._requests[n] = self.compiled(n).create_infer_request()
        return self._requests[n]

    def input_tensor(self, pixels: np.ndarray) -> np.ndarray:
        """Pixels -> the normalised float32 tensor the model takes, in the card's layout."""
        return np.ascontiguousarray(normalize(pixels, self.card.input, self.layout), dtype=np.float32)

    def run_tensor(self, x: np.ndarray) -> np.ndarray:
        """One inference on a normalised float32 tensor in :attr:`layout` -> float32 logits."""
        req = self.request(len(x))
        req.infer({0: np.ascontiguousarray(x, dtype=np.float32)})
        return np.array(req.get_output_tensor(0).data, dtype=np.float32)  # copy: the buffer is reused

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return run_batched(lambda p: self.run_tensor(self.input_tensor(p)), check_pixels(images, self.card.input))

    def __repr__(self) -> str:
        return f"OpenVinoRuntime({self.path}, threads={self.threads}, precision={self.precision})"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def describe_error(exc: BaseException) -> str:
    """The useful part of an OpenVINO exception: the operator it could not convert, when it names one."""
    text = str(exc)
    for pattern in (r"[Nn]o conversion rule found for operations?:?\s*([^\n]+)",
                    r"(Chosen Builtin Option is not accessible for this node[^\n]*)",
                    r"[Oo]p(?:eration)? type:?\s*'?([A-Za-z0-9_]+)'?", r"(Cannot create [A-Za-z0-9_]+ layer[^\n]*)"):
        m = re.search(pattern, text)
        if m:
            return m.group(0).strip()[:200]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith(("Check ", "["))]
    return (lines[0] if lines else type(exc).__name__)[:200]


def _batch_is(model: Any, n: int) -> bool:
    dim = model.inputs[0].get_partial_shape()[0]
    return dim.is_static and dim.get_length() == n


def _batched_shape(model: Any, n: int) -> list[int]:
    shape = model.inputs[0].get_partial_shape()
    return [n, *(d.get_length() for d in list(shape)[1:])]


def _compile(core: Any, model: Any, config: dict[str, Any], path: Path, precision: str) -> Any:
    try:
        compiled = core.compile_model(model, DEVICE, config)
    except RuntimeError as exc:
        raise ArtifactError(f"OpenVINO cannot compile {path.name}: {describe_error(exc)}", _HINT) from None
    hint = compiled.get_property("INFERENCE_PRECISION_HINT")
    got, want = getattr(hint, "to_string", lambda: str(hint))(), HINTS[precision]
    if got != want:
        raise ConfigError(f"OpenVINO on this CPU runs {path.name} in {got}, not {want} as asked ({precision})",
                          f"load it with precision= one of {', '.join(_supported(core))}")
    return compiled


def _supported(core: Any) -> list[str]:
    caps = set(core.get_property(DEVICE, "OPTIMIZATION_CAPABILITIES"))
    return [p for p in PRECISIONS if {"f32": "FP32", "bf16": "BF16", "f16": "FP16", "int8": "INT8"}[p] in caps]


def is_quantized(model: Any) -> bool:
    """Whether the graph holds quantisation ops (NNCF's FakeQuantize, or ONNX QDQ pairs read by OpenVINO)."""
    return any(op.get_type_name() in QUANT_OPS for op in model.get_ops())


def read_ir_card(model: Any, path: Path) -> ModelCard | None:
    """The card in an IR's ``rt_info``, or None when it has none."""
    if not model.has_rt_info([CARD_KEY]):
        return None
    return ModelCard.loads(model.get_rt_info([CARD_KEY]).astype(str))


def ir_card_text(path: Path) -> str | None:
    """The card JSON in an IR ``.xml``'s ``rt_info`` read as plain XML (no OpenVINO needed), or None."""
    import xml.etree.ElementTree as ET

    try:
        for _event, elem in ET.iterparse(str(path), events=("end",)):
            if elem.tag == CARD_KEY and elem.get("value") is not None:
                return elem.get("value")
    except ET.ParseError as exc:
        raise ArtifactError(f"{path} is not a valid OpenVINO IR ({exc})", _HINT) from None
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc.strerror}", _HINT) from None
    return None


def _card_of(path: Path, model: Any) -> ModelCard:
    if path.suffix.lower() != ".xml":  # an .onnx / .tflite run by OpenVINO: the card as its format reads it
        from edge_tl.runtimes.base import read_card as read_any_card

        return read_any_card(path)
    card = read_ir_card(model, path)
    return card if card is not None else embedded_or_sidecar(None, path, f"rt_info '{CARD_KEY}'", _HINT)


@register_card_reader(".xml")
def read_card(path: Path) -> ModelCard:
    """The card of an IR ``.xml`` without OpenVINO: its ``rt_info`` read as XML, else the sidecar."""
    return embedded_or_sidecar(ir_card_text(path), path, f"rt_info '{CARD_KEY}'", _HINT)


def _read(core: Any, path: Path) -> Any:
    if path.suffix.lower() == ".xml" and not path.with_suffix(".bin").is_file():
        raise ArtifactError(f"{path} has no weights file {path.with_suffix('.bin').name} beside it", _HINT)
    if path.suffix.lower() == ".tflite":
        from edge_tl.runtimes.litert_rt import check_tflite_bytes

        check_tflite_bytes(path.read_bytes(), path)
    try:
        return core.read_model(str(path))
    except RuntimeError as exc:
        raise ArtifactError(f"OpenVINO cannot read {path.name}: {describe_error(exc)}",
                            "run it with its own runtime (--runtimes ort/litert) or re-export it") from None


def default_precision(card: ModelCard, quantized: bool) -> str:
    """The precision a file runs at when none is asked for: the card's (OpenVINO IR), else f32 / int8."""
    if card.format == "openvino" and card.precision:
        return card.precision
    return "int8" if quantized else "f32"


def _check_io(model: Any, card: ModelCard, path: Path) -> None:
    if len(model.inputs) != 1:
        raise ArtifactError(f"{path}: {len(model.inputs)} inputs; edge-tl models take one image tensor", _HINT)
    inp = model.inputs[0]
    if not inp.get_element_type().is_real():
        raise ArtifactError(f"{path}: input type {inp.get_element_type()}; OpenVINO runs float-input files here",
                            "run full-int8 .tflite files with --runtimes litert")
    shape = inp.get_partial_shape()
    dims = [d.get_length() if d.is_static else None for d in shape] if shape.rank.is_static else []
    hw = dims[2:4] if card.input.layout == "NCHW" else dims[1:3]
    if len(dims) != 4 or any(v is not None and v != card.input.size for v in hw):
        raise ArtifactError(f"{path}: input shape {dims} does not match the card's {card.input.size}x"
                            f"{card.input.size} {card.input.layout}", _HINT)
    out = model.outputs[0].get_partial_shape()
    width = out[-1].get_length() if out.rank.is_static and out[-1].is_static else None
    if width is not None and width != card.num_classes:
        raise ArtifactError(f"{path}: the model outputs {width} logits but its card names {card.num_classes} "
                            "classes", _HINT)


def _pinned(threads: int) -> bool:
    try:
        allowed = len(os.sched_getaffinity(0))
    except AttributeError:
        return False
    return allowed == threads and allowed < (os.cpu_count() or allowed)


class Int8OverflowWarning(UserWarning):
    """An int8 file with full 8-bit weights run by OpenVINO on a CPU whose 8-bit dot products can saturate."""


def _check_precision(prec: str, quantized: bool, path: Path) -> str:
    if prec not in PRECISIONS:
        raise ConfigError(f"unknown OpenVINO precision '{prec}'", f"use one of {', '.join(PRECISIONS)}")
    if prec == "int8" and not quantized:
        raise ConfigError(f"{path.name} is not quantised, so it cannot run in int8",
                          "export it with --format openvino --quantize int8, or use precision f32/bf16")
    return prec


def _config(precision: str, threads: int, pin: bool | None) -> dict[str, Any]:
    """The CPU plugin's settings: explicit precision, ``threads``, one stream, latency hint, pinning."""
    return {"INFERENCE_PRECISION_HINT": HINTS[precision], "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1,
            "PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": _pinned(threads) if pin is None else bool(pin)}


def _load(path: Path, threads: int | None = None, precision: str | None = None, pin: bool | None = None,
          **_: object) -> OpenVinoRuntime:
    """Open ``path`` with OpenVINO on the CPU at an explicit inference precision."""
    try:
        import openvino as ov
    except ImportError:
        raise BackendMissingError("openvino", "run models with OpenVINO") from None
    path = Path(path)
    core = ov.Core()
    model = _read(core, path)
    card = _card_of(path, model)
    _check_io(model, card, path)
    quantized = is_quantized(model)
    prec = _check_precision(precision or default_precision(card, quantized), quantized, path)
    n = default_threads(threads)
    config = _config(prec, n, pin)
    warn_if_saturated(card, path)
    full_range = card.quantization is None or card.quantization.full_range_int8_weights
    if quantized and path.suffix.lower() != ".xml" and full_range and int8_overflow_risk():
        warnings.warn(f"{path.name}: this CPU has no VNNI, and OpenVINO's 8-bit kernels can saturate on this file's "
                      "full-range int8 weights (its outputs may differ from ONNX Runtime's); run it with ONNX Runtime, "
                      "or export --onnx-int8-weights reduced, or --format openvino --quantize int8 (NNCF applies "
                      "its overflow fix)",
                      Int8OverflowWarning, stacklevel=3)
    return OpenVinoRuntime(core, model, card, path, n, prec, config)


for _suffix in (".xml", ".onnx", ".tflite"):  # the default for IRs only, whatever the import order
    register_runtime(_suffix, "openvino", default=_suffix == ".xml", requires="openvino")(_load)
load_openvino = _load
