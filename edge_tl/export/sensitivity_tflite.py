"""LiteRT backend for the sensitivity analysis and budget search (:mod:`edge_tl.export.sensitivity`).

Calibrates the float flatbuffer once (edge-tl's calibration: per-image extremes reduced over all images, see
:mod:`edge_tl.export.tflite_quant`), then builds ai-edge-quantizer's full-int8 recipe (``static_wi8_ai8``) with
chosen ops left float (a ``NO_QUANTIZE`` entry whose scope regex matches exactly that op's output tensor), or with
a single op quantised.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from edge_tl.card import ModelCard
from edge_tl.data.preprocess import normalize
from edge_tl.errors import DataError, ExportError
from edge_tl.export.sensitivity import LayerInfo, register_backend

COMPUTE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MUL", "HARD_SWISH", "LOGISTIC", "MEAN",
               "AVERAGE_POOL_2D", "CONCATENATION", "BATCH_MATMUL", "SUB", "MAX_POOL_2D")


def _scope_regex(name: str) -> str:
    return f"(^|;){re.escape(name)}($|;)"


def _ops(content: bytes) -> list[tuple[str, str]]:
    """(op type, first output tensor name) of every op of the first subgraph, in order."""
    from ai_edge_litert import schema_py_generated as fb

    model = fb.Model.GetRootAs(content, 0)
    sub = model.Subgraphs(0)
    names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    out = []
    for i in range(sub.OperatorsLength()):
        op = sub.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
        if op.OutputsLength():
            out.append((names.get(builtin, str(builtin)), sub.Tensors(op.Outputs(0)).Name().decode()))
    return out


def _label(name: str) -> str:
    """``.../torch.nn.modules.conv.Conv2d_features.3.conv.0;`` -> ``Conv2d features.3.conv.0``."""
    tail = re.sub(r";\d*$", "", name).split("/")[-1].split(";")[0]
    if tail.startswith("torch.nn.modules."):
        cls, _, path = tail.split(".")[-1].partition("_")
        return f"{cls} {path}".strip() if path else cls
    return tail


class TfliteQuantBackend:
    """Full-int8 builds of one float ``.tflite`` from a single calibration pass."""

    format = "tflite"

    def __init__(self, float_content: bytes, card: ModelCard, calibration: Callable[[int], Iterator[np.ndarray]],
                 method: str = "minmax", threads: int = 2, output: str = "float",
                 input_range: tuple[float, float] | None = None, io_type: str = "int8") -> None:
        """``card`` describes the candidates: the run's card, with the input the float flatbuffer takes."""
        from edge_tl.export.tflite_quant import calibrate, io_tensor_names

        self.float_content, self.threads, self.method = bytes(float_content), threads, method
        self.card = card.with_(format="tflite")
        spec = card.input
        self.io_type = io_type  # "uint8": candidates get the shipped file's uint8 input (tflite_quant.uint8_io)
        pixels = [b for b in calibration(16)]
        if not pixels:
            raise DataError("no calibration images were read", "check the run's train split")
        inputs = normalize(np.concatenate(pixels), spec, "NHWC")
        self.calib_images = len(inputs)
        self.qsvs = calibrate(self.float_content, inputs, self._recipe(), method=method, threads=threads,
                              input_range=input_range)
        self._ops = _ops(self.float_content)
        # As the exporter does: with output="float" the logits layer stays float and cannot saturate.
        self.base_float = list(io_tensor_names(self.float_content)[1]) if output == "float" else []
        self._float_rt = self._runtime(self.float_content)

    @staticmethod
    def _recipe(float_layers: Sequence[str] = (), only: str | None = None) -> Any:
        from ai_edge_quantizer import algorithm_manager, qtyping, recipe, recipe_manager

        if only is None:
            base = recipe.static_wi8_ai8()
        else:
            rm0 = recipe_manager.RecipeManager()
            rm0.add_static_config(regex=_scope_regex(only), operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                                  activation_num_bits=8, weight_num_bits=8)
            base = rm0.get_quantization_recipe()
        rm = recipe_manager.RecipeManager()
        rm.load_quantization_recipe(base)
        for name in float_layers:
            rm.add_quantization_config(regex=_scope_regex(name),
                                       operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                                       algorithm_key=algorithm_manager.AlgorithmName.NO_QUANTIZE)
        return rm.get_quantization_recipe()

    def layers(self) -> list[LayerInfo]:
        out = []
        for i, (op, name) in enumerate(self._ops):
            if op not in COMPUTE_OPS or name in self.base_float:
                continue
            q = self.qsvs.get(name)
            lo = float(np.min(q["min"])) if q else None
            hi = float(np.max(q["max"])) if q else None
            out.append(LayerInfo(name, op, i, lo, hi, label=_label(name)))
        return out

    def build(self, float_layers: Sequence[str] = (), only: str | None = None) -> bytes:
        from ai_edge_quantizer import quantizer

        from edge_tl.export.tflite_quant import _quiet, uint8_io

        try:
            with _quiet():
                recipe = self._recipe([*self.base_float, *float_layers], only)
                q = quantizer.Quantizer(bytearray(self.float_content), recipe)
                result = q.quantize(self.qsvs, enable_progress_bar=False, enable_progress_report=False)
        except (ValueError, RuntimeError, KeyError, NotImplementedError) as exc:
            raise ExportError(f"ai-edge-quantizer failed: {str(exc).splitlines()[0][:200]}") from None
        content = bytes(result.quantized_model)
        return uint8_io(content) if self.io_type == "uint8" and only is None else content

    def _runtime(self, content: bytes, threads: int | None = None) -> Any:
        from edge_tl.runtimes.litert_rt import LiteRtRuntime

        return LiteRtRuntime.from_bytes(content, self.card, threads or self.threads)

    def run(self, content: bytes, pixels: np.ndarray) -> np.ndarray:
        return self._runtime(content)(pixels)

    def float_logits(self, pixels: np.ndarray) -> np.ndarray:
        return self._float_rt(pixels)

    def latency_ms(self, content: bytes, runs: int = 30) -> float:
        from edge_tl.runtimes.timing import batch1_ms

        return batch1_ms(self._runtime(content, threads=1), runs)  # the engine alone, as bench times it


@register_backend("tflite")
def make_tflite_backend(float_content: bytes, card: ModelCard, calibration: Callable[[int], Iterator[np.ndarray]],
                        method: str = "minmax", **kw: Any) -> TfliteQuantBackend:
    """Factory registered for ``format="tflite"``."""
    return TfliteQuantBackend(float_content, card, calibration, method=method, **kw)
