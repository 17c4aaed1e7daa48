"""The exporter registry: one function per (format, quantisation) pair, registered by decorator.

An exporter turns an :class:`ExportRequest` into one artefact file (written through ``edge_tl._io.atomic_path``,
card inside and beside) and returns an :class:`Artifact`. A card writer per format rewrites the card inside an
existing file (used to store the parity result after verification). The registry feeds the CLI's choices,
validation ("valid pairs: ...") and dispatch; :func:`edge_tl.export.api.export` drives it.

Both tables are :class:`~edge_tl.registry.Registry` objects (:data:`EXPORTERS` keyed ``format/quantize``,
:data:`CARD_WRITERS` keyed by format). Format modules register on import; the registries import those that exist
on first read, so a backend written later (or missing) never breaks the others.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_tl.card import ModelCard
from edge_tl.errors import ConfigError, UnknownNameError
from edge_tl.records import QuantRecipe
from edge_tl.registry import Registry

if TYPE_CHECKING:
    import numpy as np
    import torch

    from edge_tl.data.manifest import Manifest
    from edge_tl.parity import FidelitySet
    from edge_tl.progress import Reporter

QUANTIZE_MODES = ("none", "fp16", "dynamic", "int8")
# Float artefacts pinned to another inference precision than f32 (``--openvino-precision``): registered like a
# quantisation mode, planned from ExportOptions.openvino_precision rather than --quantize.
PRECISION_VARIANTS = ("bf16",)
OPENVINO_PRECISIONS = ("f32", *PRECISION_VARIANTS)
_MODES = (*QUANTIZE_MODES, *PRECISION_VARIANTS)
CALIB_METHODS = ("minmax", "entropy", "percentile")
OUTPUT_RECIPES = ("float", "quantized")  # logits layer kept in float (default) or fully quantised
ONNX_WEIGHT_RANGES = ("auto", "full", "reduced", "u8")  # export/onnx_quant.py WEIGHT_SCHEMES
INT8_PREPS = ("auto", "none", "bias", "cle", "cle+bias", "adaround", "cle+adaround", "qat")  # export/int8_prep.py
_FORMAT_MODULES = ("edge_tl.export.onnx_export", "edge_tl.export.onnx_quant", "edge_tl.export.tflite_export",
                   "edge_tl.export.openvino_export", "edge_tl.export.openvino_quant")
# Python packages a format's exporters need, and what to install: a missing one skips the format in
# ``--format all`` (one warning) and is an error when the format is asked for by name.
FORMAT_PACKAGES: dict[str, tuple[tuple[str, ...], str]] = {
    "openvino": (("openvino",), "pip install 'edge-tl[openvino]'"),
}


@dataclass(frozen=True)
class ExportOptions:
    """Knobs shared by every exporter; CLI flags map onto these fields."""

    calib_size: int = 200
    calib_method: str = "minmax"
    calib_split: str = "train"
    output: str = "float"  # "float" keeps the logits un-quantised; "quantized" = naive full int8
    opset: int = 18
    max_drop: float = 1.0
    min_agreement: float = 0.98  # top-1 agreement required of quantised variants (float ones need 100 %)
    max_saturated: float = 0.001  # fraction of int8 outputs at the limits
    max_ece_delta: float = 1.0  # percentage points vs the PyTorch model
    verify: bool = True
    fallback: bool = True  # int8 over --max-drop on validation images -> keep sensitive layers float
    force: bool = False
    threads: int | None = None
    seed: int = 0
    onnx_weights: str = "auto"  # ONNX static int8 weights: full / reduced (7-bit) int8, u8; auto: by CPU
    int8_prep: str = "auto"  # BN folding + bias correction / CLE on a copy of the model before full int8
    openvino_precision: tuple[str, ...] = ("f32",)  # float IRs to write: f32 -> model.xml, bf16 -> model_bf16.xml

    def __post_init__(self) -> None:
        for p in self.openvino_precision:
            if p not in OPENVINO_PRECISIONS:
                raise UnknownNameError("OpenVINO precision", p, OPENVINO_PRECISIONS)
        if self.onnx_weights not in ONNX_WEIGHT_RANGES:
            raise UnknownNameError("ONNX int8 weight range", self.onnx_weights, ONNX_WEIGHT_RANGES)
        if self.int8_prep not in INT8_PREPS:
            raise UnknownNameError("int8 preparation", self.int8_prep, INT8_PREPS)
        if self.calib_size < 1:
            raise ConfigError(f"--calib-size must be >= 1, got {self.calib_size}")
        if self.calib_method not in CALIB_METHODS:
            raise UnknownNameError("calibration method", self.calib_method, CALIB_METHODS)
        if self.output not in OUTPUT_RECIPES:
            raise UnknownNameError("output recipe", self.output, OUTPUT_RECIPES)
        if not 17 <= self.opset <= 23:
            raise ConfigError(f"--opset {self.opset} is not supported", "use an opset from 17 to 23")
        if not 0.0 <= self.min_agreement <= 1.0:
            raise ConfigError(f"--min-agreement must be within 0..100 %, got {100 * self.min_agreement:g}")
        if self.max_drop < 0 or self.max_saturated < 0 or self.max_ece_delta < 0:
            raise ConfigError("--max-drop, --max-saturated and --max-ece-delta must be >= 0")


@dataclass
class ExportRequest:
    """Everything an exporter needs: the source model, its card, where to write, and the options.

    ``float_path`` is the float artefact of the same format (already written) for quantising exporters.
    ``calibration`` yields uint8 pixel batches ``(n, H, W, 3)`` from the run's train split (real images).
    ``fidelity``: the images the parity gate judges (:func:`edge_tl.parity.fidelity_set`), for an exporter that
    runs its own accuracy budget on them.
    """

    model: torch.nn.Module
    card: ModelCard  # the run's card (format "pytorch")
    checkpoint: Path
    source_sha256: str
    out_path: Path
    format: str
    quantize: str
    options: ExportOptions
    manifest: Manifest | None = None
    float_path: Path | None = None
    calibration: Callable[[int], Iterator[np.ndarray]] | None = None
    notes: list[str] = field(default_factory=list)  # warnings the exporter wants shown to the user
    reporter: Reporter | None = None  # where long steps (calibration) report progress; None = silent
    fidelity: FidelitySet | None = None


@dataclass(frozen=True)
class Artifact:
    """One written artefact: file, its card (as written), and how long the conversion took."""

    path: Path
    card: ModelCard
    format: str
    quantize: str
    seconds: float
    notes: tuple[str, ...] = ()

    @property
    def size_mb(self) -> float:
        weights = self.path.with_suffix(".bin")  # an OpenVINO IR keeps its weights beside the .xml
        extra = weights.stat().st_size if self.path.suffix == ".xml" and weights.is_file() else 0
        return (self.path.stat().st_size + extra) / 1e6

    def to_json(self) -> dict[str, Any]:
        q = self.card.quantization
        return {"path": str(self.path), "format": self.format, "quantize": self.quantize,
                "size_mb": round(self.size_mb, 4), "seconds": round(self.seconds, 3), "notes": list(self.notes),
                "budget": None if q is None or q.budget is None else q.budget.to_json(),
                "parity": None if self.card.parity is None else self.card.parity.to_json()}


Exporter = Callable[[ExportRequest], Artifact]
CardWriter = Callable[[Path, ModelCard], None]


@dataclass(frozen=True)
class ExporterEntry:
    format: str
    quantize: str
    filename: str
    fn: Exporter
    needs_float: bool
    needs_calibration: bool
    own_budget: bool = False  # the exporter enforces --max-drop itself (the driver's fallback search is skipped)


def _import_formats() -> None:
    # Format modules register on import; one that is not installed or not written is skipped.
    for mod in _FORMAT_MODULES:
        if importlib.util.find_spec(mod) is not None:
            importlib.import_module(mod)


# "format/quantize" (e.g. "onnx/int8") -> its exporter; format -> the writer of the card inside its files.
EXPORTERS: Registry[ExporterEntry] = Registry("exporter", load=_import_formats)
CARD_WRITERS: Registry[CardWriter] = Registry("card writer", load=_import_formats)


def register_exporter(format: str, quantize: str, *, filename: str, needs_float: bool | None = None,
                      needs_calibration: bool = False, own_budget: bool = False) -> Callable[[Exporter], Exporter]:
    """Register ``fn(req) -> Artifact`` for ``(format, quantize)`` writing ``out/<filename>``.

    ``needs_float`` (default: quantize != "none") makes the driver write the float artefact first and pass it as
    ``req.float_path``; ``needs_calibration`` makes it supply ``req.calibration``. Duplicates raise.
    """
    if quantize not in _MODES:
        raise ConfigError(f"unknown quantisation mode '{quantize}' in exporter registration")

    def deco(fn: Exporter) -> Exporter:
        EXPORTERS.add(f"{format}/{quantize}", ExporterEntry(format, quantize, filename, fn,
                                                             quantize != "none" if needs_float is None
                                                             else needs_float, needs_calibration, own_budget))
        return fn

    return deco


def register_card_writer(format: str) -> Callable[[CardWriter], CardWriter]:
    """Register ``fn(path, card)`` that replaces the card inside an artefact of ``format`` (atomically)."""
    return CARD_WRITERS.register(format)


def formats() -> list[str]:
    """Formats with at least one registered exporter."""
    return sorted({e.format for e in EXPORTERS.values()})


def valid_pairs() -> list[str]:
    """Every registered ``format/quantize`` pair, e.g. ``onnx/int8``."""
    entries = sorted(EXPORTERS.values(), key=lambda e: (e.format, _MODES.index(e.quantize)))
    return [f"{e.format}/{e.quantize}" for e in entries]


def get_exporter(format: str, quantize: str) -> ExporterEntry:
    """The entry for ``(format, quantize)``; an unsupported pair raises listing the valid ones."""
    if format not in formats():
        raise UnknownNameError("format", format, [*formats(), "all"])
    entry = EXPORTERS.find(f"{format}/{quantize}")
    if entry is None:
        raise ConfigError(f"{format} export does not support --quantize {quantize}",
                          f"valid pairs: {', '.join(valid_pairs())}")
    return entry


def has_exporter(format: str, quantize: str) -> bool:
    """Whether ``(format, quantize)`` is registered."""
    return f"{format}/{quantize}" in EXPORTERS


def get_card_writer(format: str) -> CardWriter:
    """The card writer of ``format``; an unknown format raises with a suggestion."""
    return CARD_WRITERS.get(format)


def artifact_card(req: ExportRequest, *, layout: str = "NCHW", input_dtype: str = "float32",
                  output_dtype: str = "float32", quantization: QuantRecipe | None = None,
                  input_scale: float | None = None, input_zero_point: int | None = None,
                  output_scale: float | None = None, output_zero_point: int | None = None) -> ModelCard:
    """The card of a new artefact derived from the run's card (provenance, versions, no parity yet)."""
    from edge_tl.card import OutputSpec, library_versions, now_iso

    run = req.card
    inp = run.input.__class__(**{**run.input.__dict__, "layout": layout, "dtype": input_dtype,
                                 "scale": input_scale, "zero_point": input_zero_point})
    versions = {**run.versions, **library_versions("edge-tl", "torch", "onnx", "onnxruntime", "onnxslim",
                                                   "litert-torch", "ai-edge-litert", "ai-edge-quantizer")}
    return run.with_(format=req.format, input=inp,
                     output=OutputSpec(dtype=output_dtype, scale=output_scale, zero_point=output_zero_point),
                     quantization=quantization, source_sha256=req.source_sha256, parity=None,
                     versions=versions, created=now_iso())
