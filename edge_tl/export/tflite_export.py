"""TFLite (LiteRT) export: litert-torch for the float model, ai-edge-quantizer for fp16 / dynamic / full int8.

Every file takes NHWC RGB pixels with the model's normalisation folded into the graph
(``InputSpec.graph_mean``/``graph_std`` in the card): float variants take float32 pixels in [0, 1], full int8
takes uint8 pixels 0..255 (scale 1/255, zero point 0; ``io_type="int8"`` keeps ai-edge-quantizer's int8 input)
and gives float32 logits or, with ``output="quantized"``, uint8. MediaPipe and the TFLite Task Library normalise
with one mean/std for all channels only, so per-channel normalisation outside the graph would classify wrongly.
Every file carries the standard TFLite Model Metadata with ``labels.txt`` (:mod:`edge_tl.export.tflite_metadata`),
its edge-tl card in a metadata buffer :data:`~edge_tl.card.CARD_KEY` and beside it, and is written atomically.

Public API: :func:`convert_float`, :func:`export_tflite` (standalone, used by the registered exporters and the
benchmark), :func:`embed_metadata`, :func:`write_tflite`, :func:`write_tflite_card`; the XNNPACK delegation check
(:func:`xnnpack_partitions`, :func:`partition_note`) lives in :mod:`edge_tl.export.tflite_xnnpack`.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_tl._cpu import usable_cores
from edge_tl._io import atomic_path
from edge_tl.card import CARD_KEY, InputSpec, ModelCard, OutputSpec, library_versions, now_iso, sidecar_path
from edge_tl.errors import ArtifactError, BackendMissingError, ConfigError, ExportError
from edge_tl.export.registry import Artifact, ExportRequest, register_card_writer, register_exporter
from edge_tl.export.tflite_metadata import embed_metadata
from edge_tl.export.tflite_quant import OUTPUT_MARGIN, QUANT_MODES, QuantizedTflite, quantize_tflite
from edge_tl.export.tflite_xnnpack import partition_note, xnnpack_partitions
from edge_tl.progress import Reporter, of
from edge_tl.records import QuantRecipe

if TYPE_CHECKING:
    import torch

FILENAMES = {"none": "model.tflite", "fp16": "model_fp16.tflite", "dynamic": "model_dynamic.tflite",
             "int8": "model_int8.tflite"}
_VERSIONS = ("edge-tl", "torch", "litert-torch", "ai-edge-litert", "ai-edge-quantizer")


@contextlib.contextmanager
def _quiet_litert_torch() -> Iterator[None]:
    """litert-torch prints a progress line per conversion step unless this variable says no."""
    key = "LITERT_TORCH_SHOW_PROGRESS"
    old = os.environ.get(key)
    os.environ[key] = "n"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def _normalised(model: torch.nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.nn.Module:
    """``model`` behind ``x * (1 / std) - mean / std``: pixels in [0, 1] in, same logits out."""
    import torch

    class Normalised(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model
            self.register_buffer("scale", torch.tensor([1.0 / s for s in std]).view(1, 3, 1, 1))
            self.register_buffer("shift", torch.tensor([-m / s for m, s in zip(mean, std)]).view(1, 3, 1, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x * self.scale + self.shift)

    return Normalised().eval()


def convert_float(model: torch.nn.Module, size: int,
                  normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None) -> bytes:
    """Convert ``model`` (normalised NCHW float in) to a float32 TFLite flatbuffer taking NHWC ``(1, size, size,
    3)``; the runtime resizes the batch. With ``normalization`` (mean, std) it is folded into the graph, which
    then takes pixels in [0, 1]. Raises :class:`ExportError` naming the failing operator."""
    try:
        import litert_torch
        import torch
    except ImportError:
        raise BackendMissingError("litert-torch", "export TFLite models") from None
    name = getattr(model, "backbone_name", type(model).__name__)
    if normalization is not None:
        model = _normalised(model.eval(), *normalization)
    wrapped = litert_torch.to_channel_last_io(model.eval(), args=[0]).eval()
    sample = torch.zeros(1, size, size, 3)
    try:
        with _quiet_litert_torch(), torch.no_grad():
            return bytes(litert_torch.convert(wrapped, (sample,)).model_content())
    except Exception as exc:  # noqa: BLE001 - the converter raises anything from torch.export, MLIR or the TFLite converter
        raise ExportError(f"litert-torch could not convert {name}: {_first_line(exc)}",
                          "export ONNX instead (--format onnx), or report the operator named above") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:240]}" if text else type(exc).__name__


def with_metadata(content: bytes, card: ModelCard) -> bytes:
    """``content`` with ``card`` embedded and the standard TFLite Model Metadata (labels.txt packed) written."""
    from edge_tl.export.tflite_metadata import add_standard_metadata

    return add_standard_metadata(embed_metadata(content, CARD_KEY, card.dumps().encode("utf-8")), card)


def write_tflite(content: bytes, card: ModelCard, path: Path) -> Path:
    """Write ``content`` with ``card`` and the standard metadata to ``path``, and the card to its sidecar, each
    atomically."""
    data = with_metadata(content, card)
    with atomic_path(Path(path)) as tmp:
        tmp.write_bytes(data)
    card.save(sidecar_path(path))
    return Path(path)


@register_card_writer("tflite")
def write_tflite_card(path: Path, card: ModelCard) -> None:
    """Replace the card inside an existing ``.tflite`` (and its sidecar), e.g. to store the parity result."""
    from edge_tl.runtimes.litert_rt import check_tflite_bytes

    path = Path(path)
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc.strerror}") from None
    check_tflite_bytes(content, path)
    write_tflite(content, card, path)


def folded_input(spec: InputSpec) -> InputSpec:
    """``spec`` for a graph with the normalisation folded in: pixels in [0, 1] (mean 0, std 1) go in."""
    if spec.graph_mean is not None:
        return spec
    return replace(spec, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), graph_mean=spec.mean, graph_std=spec.std)


def is_folded(content: bytes) -> bool:
    """Whether a flatbuffer's embedded card says the normalisation is in the graph (False without a card)."""
    from edge_tl.runtimes.litert_rt import read_tflite_metadata

    embedded = read_tflite_metadata(content, CARD_KEY)
    return bool(embedded) and ModelCard.loads(embedded).input.graph_mean is not None


def _artefact_card(run_card: ModelCard, content: bytes, quantization: QuantRecipe | None,
                   source_sha256: str | None, folded: bool = True) -> ModelCard:
    """The card of a TFLite file: the run's card with the file's own input/output tensors described."""
    from edge_tl.runtimes.litert_rt import make_interpreter

    it = make_interpreter(content, 1)
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    iq, oq = np.dtype(i["dtype"]).kind in "iu", np.dtype(o["dtype"]).kind in "iu"
    base = folded_input(run_card.input) if folded else run_card.input
    inp = replace(base, layout="NHWC", dtype=np.dtype(i["dtype"]).name,
                  scale=float(i["quantization"][0]) if iq else None,
                  zero_point=int(i["quantization"][1]) if iq else None)
    out = OutputSpec(dtype=np.dtype(o["dtype"]).name, scale=float(o["quantization"][0]) if oq else None,
                     zero_point=int(o["quantization"][1]) if oq else None)
    return run_card.with_(format="tflite", input=inp, output=out, quantization=quantization,
                          source_sha256=source_sha256 or run_card.source_sha256, parity=None,
                          versions={**run_card.versions, **library_versions(*_VERSIONS)}, created=now_iso())


def export_tflite(model: torch.nn.Module | None, card: ModelCard, out_path: Path, quantize: str = "none",
                  calib_pixels: np.ndarray | None = None, *, calib_method: str = "minmax",
                  calib_split: str = "train", percentile: float = 99.99, output_margin: float = OUTPUT_MARGIN,
                  output: str = "quantized", float_content: bytes | None = None,
                  source_sha256: str | None = None, threads: int = 2,
                  progress: Callable[[int], None] | None = None, io_type: str = "uint8",
                  fold: bool | None = None) -> Artifact:
    """Export ``model`` (or quantise ``float_content``) as ``quantize`` to ``out_path`` with ``card`` inside.

    Args:
        model: the PyTorch model (normalised NCHW in); may be None when ``float_content`` is given.
        card: the run's card (classes, preprocessing, provenance).
        quantize: ``none``, ``fp16``, ``dynamic`` or ``int8``.
        calib_pixels: uint8 ``(N, H, W, 3)`` images from the run's train split (required for ``int8``).
        calib_method: ``minmax`` (default), ``percentile``, ``absmax`` or ``ema`` (ai-edge-quantizer's own,
            saturates; for measurement only); see :mod:`edge_tl.export.tflite_quant`.
        output_margin: headroom added to the calibrated logit range (a fraction of its extremes).
        output: full int8 only: ``quantized`` (integer output) or ``float`` (the logits layer in float,
            float32 output).
        float_content: the float flatbuffer if already converted (saves a conversion per variant).
        io_type: full int8 only: ``uint8`` (default; MediaPipe, Model Maker's layout) or ``int8`` input, and the
            same type for a quantised output.
        fold: fold the normalisation into the graph (default when converting ``model``); with ``float_content``
            the default is what its embedded card says (not folded without a card).
    """
    if quantize not in FILENAMES:
        raise ConfigError(f"unknown TFLite quantisation '{quantize}'", f"use one of: {', '.join(FILENAMES)}")
    t0 = time.perf_counter()
    if float_content is None:
        if model is None:
            raise ConfigError("export_tflite needs a model or float_content")
        fold = True if fold is None else fold
        src = card.input
        norm = ((src.graph_mean or src.mean, src.graph_std or src.std) if fold else None)
        float_content = convert_float(model, card.input.size, norm)
    elif fold is None:
        fold = is_folded(float_content)
    notes: list[str] = []
    quantization = None
    content = float_content
    if quantize != "none":
        spec = folded_input(card.input) if fold else card.input
        calib = _calib_inputs(calib_pixels, spec) if QUANT_MODES[quantize].calibrated else None
        q = quantize_tflite(float_content, quantize, calib, method=calib_method, percentile=percentile,
                            threads=threads, output_margin=output_margin, output=output, progress=progress,
                            io_type=io_type, input_range=(0.0, 1.0) if fold else None)
        content = q.content
        quantization = _quantization_record(q, calib_split)
        if q.calibration is not None:
            note = partition_note(float_content, content, card.input.size)
            if note:
                notes.append(note)
            if calib_method == "ema" and output == "quantized":
                notes.append("ema calibration (ai-edge-quantizer's default) under-covers the logits' range; "
                             "use minmax or percentile")
        if quantize == "dynamic":
            notes.append("dynamic-range int8 quantises activations at run time: smaller file, usually slower "
                         "than fp32 with XNNPACK on x86")
    seconds = time.perf_counter() - t0
    final = _artefact_card(card, content, quantization, source_sha256, fold)
    path = write_tflite(content, final, Path(out_path))
    return Artifact(path, final, "tflite", quantize, seconds, tuple(notes))


def _calib_inputs(pixels: np.ndarray | None, spec: InputSpec) -> np.ndarray:
    from edge_tl.data.preprocess import normalize

    if pixels is None or len(pixels) == 0:
        raise ExportError("full int8 needs calibration images and none were given",
                          "pass images from the run's train split (--calib-size > 0)")
    return normalize(np.asarray(pixels), spec, layout="NHWC")


def _quantization_record(q: QuantizedTflite, split: str) -> QuantRecipe:
    return QuantRecipe(mode=q.mode, recipe=q.recipe, output=q.output, io_type=q.io_type,
                       calibration=None if q.calibration is None else q.calibration.with_split(split),
                       float_layers=q.float_layers, output_range=dict(q.ranges))


# ---- the exporter registry -------------------------------------------------------------------------------------
def _tflite_calib_method(req: ExportRequest) -> str:
    method = req.options.calib_method
    if method == "entropy":
        raise ConfigError("entropy calibration is not available for TFLite",
                          "use --calib-method minmax or percentile with --format tflite")
    return method


def _collect_calibration(req: ExportRequest) -> np.ndarray:
    if req.calibration is None:
        raise ExportError("full int8 needs calibration images and the run has none",
                          "export from a run folder whose split.json lists train images")
    batches = list(req.calibration(16))
    if not batches:
        raise ExportError("no calibration images were decoded", "check the run's train split")
    return np.concatenate(batches, axis=0)


@contextlib.contextmanager
def _calibration_progress(total: int, reporter: Reporter | None) -> Iterator[Callable[[int], None] | None]:
    """``done -> None`` reporting calibrated images to ``reporter`` (none when there is nothing to calibrate)."""
    if total == 0:
        yield None
        return
    with of(reporter).task("calibrating TFLite int8", total=total, unit="img") as advance:
        seen = [0]

        def progress(done: int) -> None:  # the quantiser reports images done so far; the reporter counts steps
            advance(done - seen[0])
            seen[0] = done

        yield progress


def _exporter(quantize: str) -> Callable[[ExportRequest], Artifact]:
    def run(req: ExportRequest) -> Artifact:
        float_content = None
        if quantize != "none" and req.float_path is not None and Path(req.float_path).exists():
            float_content = Path(req.float_path).read_bytes()
        pixels = None
        method = "minmax"
        if QUANT_MODES.get(quantize) is not None and QUANT_MODES[quantize].calibrated:
            method = _tflite_calib_method(req)
            pixels = _collect_calibration(req)
        threads = req.options.threads or min(2, usable_cores())
        with _calibration_progress(0 if pixels is None else len(pixels), req.reporter) as progress:
            res = export_tflite(req.model, req.card, req.out_path, quantize, pixels, calib_method=method,
                                calib_split=req.options.calib_split, output=req.options.output,
                                float_content=float_content, source_sha256=req.source_sha256, threads=threads,
                                progress=progress)
        req.notes.extend(res.notes)
        return res

    run.__name__ = f"export_tflite_{quantize}"
    run.__doc__ = f"Registered exporter for tflite/{quantize} (writes {FILENAMES[quantize]})."
    return run


for _q, _name in FILENAMES.items():
    register_exporter("tflite", _q, filename=_name, needs_calibration=_q == "int8")(_exporter(_q))

__all__ = ["FILENAMES", "convert_float", "embed_metadata", "export_tflite", "folded_input",
           "partition_note", "with_metadata", "write_tflite", "write_tflite_card", "xnnpack_partitions"]
