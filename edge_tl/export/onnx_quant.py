"""ONNX Runtime quantisation: static int8 (QDQ) calibrated on real images, and dynamic int8.

Static recipe (measured on this machine, see docs/sections/export.md): ``quant_pre_process``, then
``quantize_static`` in QDQ format with per-channel int8 weights and **uint8 activations** (int8 activations leave
residual Adds unfused and run no faster than fp32). Calibration streams real images from the run's train split
in batches, so memory stays bounded (``CalibMaxIntermediateOutputs``).

Weights use the full int8 range, or 7 bits (ORT's ``reduce_range``) with ``options.onnx_weights == "reduced"``;
``"auto"`` (default) picks 7 bits on an x86 CPU without VNNI, where ORT's u8 x s8 kernels add pairs of products in
int16 and full-range weights saturate (ORT documents this; measured on an AVX2-only CPU, catsdogs, 800 photos:
KL against float 0.020 -> 0.0057 for mobilenet_v2, 0.0094 -> 0.0018 for efficientnet_lite0), and full range
elsewhere. ``"u8"`` stores uint8 weights (zero point 128, the same 255 steps as full int8), which ORT runs on u8 x u8
kernels that cannot saturate: all 8 bits, at a speed cost that depends on the network (measured +10 % for
mobilenet_v2, 4.3 times for efficientnet_lite0's depthwise convolutions), so ``auto`` does not pick it. The
choice is recorded as ``card.quantization.weight_bits`` and ``weight_type``.

With ``options.output == "float"`` (default) the node producing the logits stays in float, so the output
can never saturate at the uint8 limits; ``"quantized"`` is the naive full-int8 graph, kept for comparison.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_tl.data.preprocess import normalize
from edge_tl.errors import DataError, ExportError
from edge_tl.export.onnx_export import INPUT_NAME, _first_line, require_float, save_onnx
from edge_tl.export.registry import Artifact, ExportRequest, artifact_card, register_exporter
from edge_tl.records import Calibration, QuantRecipe
from edge_tl.registry import Registry

CALIB_BATCH = 16
STATIC_RECIPE = "onnxruntime quantize_static QDQ"
DYNAMIC_WARNING = ("dynamic int8 runs conv nets 5-16x slower than fp32 on ONNX Runtime (ConvInteger); "
                   "prefer --quantize int8 (static) for speed")


@dataclass(frozen=True)
class WeightScheme:
    """One ``--onnx-int8-weights`` choice: the weights' integer type and range (``card.quantization``)."""

    name: str
    type: str  # int8 (ORT's u8 x s8 kernels) or uint8 (u8 x u8 kernels); both symmetric per output channel
    bits: int  # 8, or 7 for reduce_range
    recipe: str  # how the recipe string names it

    @property
    def qmax(self) -> int:
        """The weight grid ``[-qmax, qmax]`` in steps of the per-channel scale (uint8's 255 steps: as int8's)."""
        return 64 if self.bits == 7 else 127

    def quantize_kwargs(self) -> dict[str, Any]:
        """The ``quantize_static`` arguments for these weights."""
        from onnxruntime.quantization import QuantType

        return {"weight_type": QuantType.QUInt8 if self.type == "uint8" else QuantType.QInt8,
                "reduce_range": self.bits == 7}


WEIGHT_SCHEMES: Registry[WeightScheme] = Registry("ONNX int8 weight scheme")
for _s in (WeightScheme("full", "int8", 8, "per-channel int8 weights"),
           WeightScheme("reduced", "int8", 7, "per-channel int8 weights, 7-bit weight range"),
           WeightScheme("u8", "uint8", 8, "per-channel uint8 weights (zero point 128)")):
    WEIGHT_SCHEMES.add(_s.name, _s)
AUTO_WITHOUT_VNNI = "reduced"  # what auto picks where full-range int8 weights saturate (see the module docstring)


def weight_scheme(choice: str) -> WeightScheme:
    """The weights ``--onnx-int8-weights choice`` gives on this CPU (``auto``: :data:`AUTO_WITHOUT_VNNI` on an
    x86 CPU without VNNI, ``full`` elsewhere)."""
    from edge_tl._cpu import int8_overflow_risk

    if choice == "auto":
        choice = AUTO_WITHOUT_VNNI if int8_overflow_risk() else "full"
    return WEIGHT_SCHEMES.get(choice)


def scheme_of(quantization: QuantRecipe | None) -> str | None:
    """The scheme an ONNX int8 file was built with, from its card (``None``: not recorded, or not static int8)."""
    if quantization is None or quantization.weight_bits is None:
        return None
    key = (quantization.weight_type or "int8", quantization.weight_bits)  # older cards: int8 weights
    return next((s.name for s in WEIGHT_SCHEMES.values() if (s.type, s.bits) == key), None)


def _preprocess(src: Path, dst: Path) -> Path:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=False)
    except Exception as exc:
        raise ExportError(f"quant_pre_process failed on {src.name}: {_first_line(exc)}",
                          f"the float {src.name} was kept") from exc
    return dst


def logits_producers(model_path: Path) -> list[str]:
    """Names of the nodes that produce the graph's outputs (the logits layer)."""
    import onnx

    model = onnx.load(str(model_path))
    outputs = {o.name for o in model.graph.output}
    return [n.name for n in model.graph.node if outputs.intersection(n.output) and n.name]


class _Reader:
    """An ORT ``CalibrationDataReader`` over the streamed calibration batches (normalised NCHW float).

    ``per_image`` feeds one image per call: ORT's histogram calibrators (entropy, percentile) stack the
    collected outputs and fail on a short last batch.
    """

    def __init__(self, batches: Iterator[np.ndarray], spec: Any, per_image: bool) -> None:
        self._batches, self._spec, self.images = batches, spec, 0
        self._per_image = per_image
        self._pending: list[np.ndarray] = []

    def get_next(self) -> dict[str, np.ndarray] | None:
        if not self._pending:
            pixels = next(self._batches, None)
            if pixels is None:
                return None
            self._pending = [pixels[i:i + 1] for i in range(len(pixels))] if self._per_image else [pixels]
        pixels = self._pending.pop(0)
        self.images += len(pixels)
        return {INPUT_NAME: normalize(pixels, self._spec, "NCHW")}

    def rewind(self) -> None:  # ORT calls it for some calibrators; a fresh stream is not needed for one pass
        pass


def _reader(req: ExportRequest) -> _Reader:
    from onnxruntime.quantization import CalibrationDataReader

    if req.calibration is None:
        raise DataError("no calibration images were supplied", "export from a run with a train split")
    cls = type("CalibrationReader", (_Reader, CalibrationDataReader), {})
    return cls(req.calibration(CALIB_BATCH), req.card.input, req.options.calib_method != "minmax")


@register_exporter("onnx", "int8", filename="model_int8.onnx", needs_calibration=True)
def export_onnx_int8(req: ExportRequest) -> Artifact:
    """Static int8 QDQ: per-channel int8 weights, uint8 activations, calibrated on the run's train images."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    t0 = time.perf_counter()
    src = require_float(req)
    opts = req.options
    with tempfile.TemporaryDirectory(prefix="edge_tl_q_") as tmp:
        pre = _preprocess(src, Path(tmp) / "pre.onnx")
        exclude = logits_producers(pre) if opts.output == "float" else []
        weights = weight_scheme(opts.onnx_weights)
        reader = _reader(req)
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # ORT prints calibration chatter to stdout
                quantize_static(str(pre), str(Path(tmp) / "q.onnx"), reader, quant_format=QuantFormat.QDQ,
                                per_channel=True, activation_type=QuantType.QUInt8,
                                calibrate_method=methods[opts.calib_method], nodes_to_exclude=exclude,
                                extra_options={"CalibMaxIntermediateOutputs": 8}, **weights.quantize_kwargs())
        except DataError:
            raise
        except Exception as exc:
            raise ExportError(f"ONNX Runtime static quantisation of {src.name} ({req.card.backbone}) failed: "
                              f"{_first_line(exc)}", f"the float {src.name} was kept") from exc
        if reader.images == 0:
            raise DataError("no calibration images were read", "check the run's train split")
        import onnx

        proto = onnx.load(str(Path(tmp) / "q.onnx"))
    recipe = QuantRecipe(mode="int8", recipe=f"{STATIC_RECIPE}, {weights.recipe}, uint8 activations",
                         output=opts.output, weight_bits=weights.bits, weight_type=weights.type,
                         calibration=Calibration(reader.images, opts.calib_method, opts.calib_split),
                         float_layers=tuple(exclude))
    card = artifact_card(req, quantization=recipe)
    save_onnx(proto, req.out_path, card)
    return Artifact(req.out_path, card, "onnx", "int8", time.perf_counter() - t0)


@register_exporter("onnx", "dynamic", filename="model_dynamic.onnx")
def export_onnx_dynamic(req: ExportRequest) -> Artifact:
    """Dynamic int8 (weights int8, activations quantised at run time): small, but slow for conv nets."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    t0 = time.perf_counter()
    src = require_float(req)
    with tempfile.TemporaryDirectory(prefix="edge_tl_q_") as tmp:
        pre = _preprocess(src, Path(tmp) / "pre.onnx")
        try:
            quantize_dynamic(str(pre), str(Path(tmp) / "q.onnx"), weight_type=QuantType.QInt8, per_channel=False)
        except Exception as exc:
            raise ExportError(f"ONNX Runtime dynamic quantisation of {src.name} ({req.card.backbone}) failed: "
                              f"{_first_line(exc)}", f"the float {src.name} was kept") from exc
        proto = onnx.load(str(Path(tmp) / "q.onnx"))
    recipe = QuantRecipe(mode="dynamic", recipe="onnxruntime quantize_dynamic, int8 weights")
    card = artifact_card(req, quantization=recipe)
    save_onnx(proto, req.out_path, card)
    return Artifact(req.out_path, card, "onnx", "dynamic", time.perf_counter() - t0, (DYNAMIC_WARNING,))
