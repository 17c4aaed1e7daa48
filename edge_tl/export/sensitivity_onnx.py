"""ONNX Runtime backend for the sensitivity analysis and budget search (:mod:`edge_tl.export.sensitivity`).

Calibrates once (ORT's calibration cache), then rebuilds the static QDQ model (per-channel int8 weights, uint8
activations: the same recipe as ``edge-tl export --quantize int8``) with ``nodes_to_exclude`` (float fallback)
or ``nodes_to_quantize`` (one layer alone), each in well under a second for a small model. A build is the graph
as the exporter writes it (:func:`~edge_tl.export.onnx_export.keep_float_weights` applied), and it runs in an
:class:`~edge_tl.runtimes.onnx_rt.OnnxRuntime` over its bytes, as the shipped file will.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edge_tl.card import InputSpec, ModelCard
from edge_tl.errors import DataError, ExportError
from edge_tl.export.sensitivity import LayerInfo, register_backend
from edge_tl.runtimes.onnx_rt import OnnxRuntime

COMPUTE_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Mul", "Sigmoid", "HardSigmoid", "HardSwish",
               "GlobalAveragePool", "AveragePool", "Concat", "LeakyRelu")
METHODS = ("minmax", "entropy", "percentile")


class OnnxQuantBackend:
    """Static int8 QDQ builds of one float ONNX model from a single calibration pass."""

    format = "onnx"

    def __init__(self, float_path: Path, card: ModelCard, calibration: Callable[[int], Iterator[np.ndarray]],
                 method: str = "minmax", base_exclude: Sequence[str] | None = None, threads: int = 2,
                 output: str = "float", weights: str | None = None) -> None:
        """``card`` describes the candidates (the float model's card: its input and classes); ``weights`` the
        exporter's ``--onnx-int8-weights`` scheme (``None``: what ``auto`` picks on this CPU)."""
        import onnx
        from onnxruntime.quantization.shape_inference import quant_pre_process

        from edge_tl.export.onnx_quant import weight_scheme

        self.card = card.with_(format="onnx", input=replace(card.input, layout="NCHW"))  # as export_float_proto
        self.method, self.threads = method, threads
        self._weights = weight_scheme(weights or "auto").quantize_kwargs()
        spec = self.card.input
        self._tmp = tempfile.TemporaryDirectory(prefix="edge_tl_sens_")
        tmp = Path(self._tmp.name)
        self.pre = tmp / "pre.onnx"
        try:
            quant_pre_process(str(float_path), str(self.pre), skip_symbolic_shape=False)
        except Exception as exc:
            raise ExportError(f"quant_pre_process failed on {Path(float_path).name}: {exc}".splitlines()[0]) from exc
        model = onnx.load(str(self.pre))
        self._inits = {i.name for i in model.graph.initializer}
        self.input_name = model.graph.input[0].name
        outputs = {o.name for o in model.graph.output}
        self._nodes = [n for n in model.graph.node if n.name]
        # The logits layer stays float (same default as the exporter), so its output cannot saturate.
        if base_exclude is None:
            base_exclude = [n.name for n in self._nodes if outputs.intersection(n.output)] if output == "float" else []
        self.base_exclude = list(base_exclude)
        self.cache = tmp / f"ranges_{method}.json"
        reader = _make_reader(calibration(16), spec, self.input_name, per_image=method != "minmax")
        self._quantize(tmp / "full.onnx", reader=reader)
        if reader.images == 0:
            raise DataError("no calibration images were read", "check the run's train split")
        self.calib_images = reader.images
        with open(self.cache) as f:
            self._ranges = json.load(f).get("data", {})
        self._float_rt = self._runtime(Path(float_path).read_bytes())

    def _quantize(self, out: Path, reader: Any = None, exclude: Sequence[str] = (),
                  only: Sequence[str] | None = None) -> Path:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                   "percentile": CalibrationMethod.Percentile}
        with contextlib.redirect_stdout(io.StringIO()):
            quantize_static(str(self.pre), str(out), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, calibrate_method=methods[self.method],
                            calibration_cache_path=str(self.cache), nodes_to_exclude=[*self.base_exclude, *exclude],
                            nodes_to_quantize=list(only) if only else None,
                            extra_options={"CalibMaxIntermediateOutputs": 8}, **self._weights)
        return out

    def _range(self, tensor: str) -> tuple[float | None, float | None]:
        entry = self._ranges.get(tensor)
        if not isinstance(entry, dict):
            return None, None
        lo, hi = entry.get("lowest"), entry.get("highest")
        try:
            return float(np.min(_as_array(lo))), float(np.max(_as_array(hi)))
        except (TypeError, ValueError):
            return None, None

    def layers(self) -> list[LayerInfo]:
        out = []
        for i, n in enumerate(self._nodes):
            if n.op_type in COMPUTE_OPS and n.name not in self.base_exclude:
                lo, hi = self._range(n.output[0])
                weights = [x for x in n.input if x in self._inits and x.endswith("weight")]
                label = weights[0].removesuffix(".weight") if weights else ""
                out.append(LayerInfo(n.name, n.op_type, i, lo, hi, label=label))
        return out

    def build(self, float_layers: Sequence[str] = (), only: str | None = None) -> bytes:
        """The QDQ model with ``float_layers`` kept float (or ``only`` quantised), as the exporter writes it."""
        import onnx

        from edge_tl.export.onnx_export import keep_float_weights

        with tempfile.TemporaryDirectory(prefix="edge_tl_q_") as tmp:
            path = self._quantize(Path(tmp) / "q.onnx", exclude=float_layers, only=[only] if only else None)
            return keep_float_weights(onnx.load(str(path))).SerializeToString()

    def _runtime(self, content: bytes, threads: int | None = None) -> OnnxRuntime:
        return OnnxRuntime.from_bytes(content, self.card, threads or self.threads)

    def run(self, content: bytes, pixels: np.ndarray) -> np.ndarray:
        return self._runtime(content)(pixels)

    def float_logits(self, pixels: np.ndarray) -> np.ndarray:
        return self._float_rt(pixels)

    def latency_ms(self, content: bytes, runs: int = 30) -> float:
        from edge_tl.runtimes.timing import batch1_ms

        return batch1_ms(self._runtime(content, threads=1), runs)  # the engine alone, as bench times it

    def close(self) -> None:
        self._tmp.cleanup()


def _make_reader(batches: Iterator[np.ndarray], spec: InputSpec, input_name: str, per_image: bool) -> Any:
    """The exporter's own streaming calibration reader (edge-tl's float ONNX files name their input ``input``)."""
    from onnxruntime.quantization import CalibrationDataReader

    from edge_tl.export.onnx_export import INPUT_NAME
    from edge_tl.export.onnx_quant import _Reader

    if input_name != INPUT_NAME:
        raise ExportError(f"the float model's input is '{input_name}', expected '{INPUT_NAME}'",
                          "export the float model with edge-tl export")
    return type("CalibrationReader", (_Reader, CalibrationDataReader), {})(batches, spec, per_image)


def _as_array(v: Any) -> np.ndarray:
    if isinstance(v, dict) and "data" in v:  # CalibrationCacheEncoder's ndarray form
        return np.asarray(v["data"], dtype=np.float64)
    return np.asarray(v, dtype=np.float64)


@register_backend("onnx")
def make_onnx_backend(float_path: Path, card: ModelCard, calibration: Callable[[int], Iterator[np.ndarray]],
                      method: str = "minmax", **kw: Any) -> OnnxQuantBackend:
    """Factory registered for ``format="onnx"`` (``card``: the float ONNX file's)."""
    return OnnxQuantBackend(float_path, card, calibration, method=method, **kw)
