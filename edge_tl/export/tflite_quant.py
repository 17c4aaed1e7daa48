"""Quantisation of a float ``.tflite`` file with ai-edge-quantizer: fp16, dynamic-range int8, full int8.

Full int8 is static (int8 weights and activations, int8 input; int8 output, or with ``output="float"`` the
logits layer kept in float) and calibrated on real images.
ai-edge-quantizer's own calibration keeps an exponential moving average (factor 0.95) of each tensor's per-image
min/max, so the ranges it stores are an average of per-image extremes, not the extremes: on a real model the
int8 output then reaches only +-4.5 while the float logits reach +-11.3 and 64 % of outputs sit at the int8 limit.
Here calibration records every image's min/max and reduces them with one of :data:`CALIB_METHODS`:

* ``minmax`` (default): the model's input and output tensors get the min/max over *all* calibration images (the
  output's widened by :data:`OUTPUT_MARGIN` for unseen images); intermediate activations keep ai-edge-quantizer's
  moving average of per-image ranges (measured on random-init MobileNetV2 at 64 px: absolute extremes
  everywhere cost resolution, logit correlation 0.76 vs 0.87);
* ``percentile``: input/output as ``minmax``; intermediates get the ``percentile``-th percentile of the per-image
  maxima (and the mirror percentile of the minima);
* ``absmax``: the extremes over all images for every tensor;
* ``ema``: ai-edge-quantizer's moving average everywhere, reproduced exactly: the naive behaviour, kept to
  measure the problem, not to ship.

Imports ai-edge-quantizer / ai-edge-litert inside functions only.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_tl.errors import ConfigError, ExportError
from edge_tl.records import Calibration

CALIB_METHODS = ("minmax", "percentile", "absmax", "ema")
EMA_FACTOR = 0.95  # ai_edge_quantizer.utils.qsv_utils.moving_average_update's default
OUTPUTS = ("quantized", "float")  # full int8: int8 logits, or the logits layer kept in float
# Headroom on the logits' range beyond the calibration extremes. Measured (benchmarks/bench_tflite.py fidelity,
# ImageNet MobileNetV2 + head, catsdogs): held-out logits reached 13.5 while 100 calibration photos reached 11.1,
# so a 10 % margin still left 1 % of held-out outputs at the int8 limit; 25 % covers them, for an int8 logit step
# 14 % coarser than with 10 % (0.11 instead of 0.096 for logits of +-11), which moves no probability visibly.
OUTPUT_MARGIN = 0.25


@dataclass(frozen=True)
class TfliteQuantMode:
    """One quantised TFLite variant: its file suffix, the ai-edge-quantizer recipe and whether it calibrates."""

    name: str
    suffix: str
    recipe: str
    build: Callable[[], Any]
    calibrated: bool = False
    description: str = ""


def _fp16_recipe() -> Any:
    from ai_edge_quantizer import algorithm_manager, qtyping, recipe_manager

    rm = recipe_manager.RecipeManager()
    rm.add_weight_only_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, num_bits=16,
                              algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING)
    return rm.get_quantization_recipe()


def _named_recipe(name: str) -> Callable[[], Any]:
    def build() -> Any:
        from ai_edge_quantizer import recipe

        return getattr(recipe, name)()

    return build


QUANT_MODES: dict[str, TfliteQuantMode] = {
    m.name: m for m in (
        TfliteQuantMode("fp16", "_fp16", "weight_only_wfp16_afp32", _fp16_recipe,
                        description="float16 weights, float32 compute (smaller file, same speed on x86)"),
        TfliteQuantMode("dynamic", "_dynamic", "dynamic_wi8_afp32", _named_recipe("dynamic_wi8_afp32"),
                        description="int8 weights, activations quantised on the fly"),
        TfliteQuantMode("int8", "_int8", "static_wi8_ai8", _named_recipe("static_wi8_ai8"), calibrated=True,
                        description="full int8: int8 weights, activations, input and output; calibrated"),
    )
}


@dataclass(frozen=True)
class QuantizedTflite:
    """A quantised flatbuffer and how it was made (what goes into ``card.quantization``)."""

    content: bytes
    mode: str
    recipe: str
    calibration: Calibration | None = None
    float_layers: tuple[str, ...] = ()
    output: str = "float"  # the logits: float, or quantized
    io_type: str | None = None  # a calibrated file's integer input type
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)


class _RangeRecorder:
    """A ``qsv_update_func`` for ai-edge-quantizer's Calibrator that keeps every image's min/max."""

    def __call__(self, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        mins = old.get("_mins") or [np.array(old["min"], dtype=np.float32)]
        maxs = old.get("_maxs") or [np.array(old["max"], dtype=np.float32)]
        mins.append(np.array(new["min"], dtype=np.float32))
        maxs.append(np.array(new["max"], dtype=np.float32))
        return {"min": np.minimum(old["min"], new["min"]), "max": np.maximum(old["max"], new["max"]),
                "_mins": mins, "_maxs": maxs}


def _widen(r: dict[str, np.ndarray], margin: float) -> dict[str, np.ndarray]:
    """Push a range outwards by ``margin`` of its own extremes (headroom for images beyond the calibration set)."""
    return {"min": r["min"] - margin * np.abs(r["min"]), "max": r["max"] + margin * np.abs(r["max"])}


def _reduce(qsv: dict[str, Any], method: str, percentile: float, is_io: bool) -> dict[str, np.ndarray]:
    """One tensor's range from its per-image minima/maxima (see :data:`CALIB_METHODS`)."""
    mins = np.stack(qsv.get("_mins") or [np.asarray(qsv["min"], np.float32)])
    maxs = np.stack(qsv.get("_maxs") or [np.asarray(qsv["max"], np.float32)])
    if method == "absmax" or (is_io and method != "ema"):
        lo, hi = mins.min(axis=0), maxs.max(axis=0)
    elif method == "percentile":
        lo = np.percentile(mins, 100.0 - percentile, axis=0, method="higher")
        hi = np.percentile(maxs, percentile, axis=0, method="lower")
    else:  # minmax / ema inside the graph: exactly ai_edge_quantizer.utils.qsv_utils.moving_average_update
        lo, hi = mins[0], maxs[0]
        for a, b in zip(mins[1:], maxs[1:]):
            lo = EMA_FACTOR * lo + (1.0 - EMA_FACTOR) * a
            hi = EMA_FACTOR * hi + (1.0 - EMA_FACTOR) * b
    return {"min": np.asarray(lo, np.float32), "max": np.asarray(hi, np.float32)}


def io_tensor_names(content: bytes) -> tuple[list[str], list[str]]:
    """Names of the first subgraph's input and output tensors."""
    from ai_edge_litert import schema_py_generated as fb

    sub = fb.Model.GetRootAs(content, 0).Subgraphs(0)
    names = [sub.Tensors(i).Name().decode() for i in range(sub.TensorsLength())]
    return ([names[sub.Inputs(i)] for i in range(sub.InputsLength())],
            [names[sub.Outputs(i)] for i in range(sub.OutputsLength())])


def calibrate(float_content: bytes, inputs: np.ndarray, recipe: Any, method: str = "minmax",
              percentile: float = 99.99, threads: int = 2, output_margin: float = OUTPUT_MARGIN,
              progress: Callable[[int], None] | None = None,
              input_range: tuple[float, float] | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Run the float model on ``inputs`` (the float model's NHWC input, one image at a time) and return the
    activation ranges ai-edge-quantizer needs, reduced with ``method`` (see the module docstring).

    ``input_range`` fixes the input's range instead of calibrating it: ``(0, 1)`` for a graph that takes pixels
    in [0, 1] makes the int8 input step exactly one pixel level (scale 1/255)."""
    from ai_edge_quantizer import calibrator, recipe_manager

    from edge_tl.runtimes.litert_rt import make_interpreter

    check_calib_method(method)
    if not 50.0 < percentile <= 100.0:
        raise ConfigError(f"calibration percentile must be in (50, 100], got {percentile}")
    sigs = make_interpreter(float_content, 1).get_signature_list()
    if len(sigs) != 1:
        raise ExportError(f"expected one signature in the float TFLite model, found {len(sigs)}")
    key, sig = next(iter(sigs.items()))
    in_name = sig["inputs"][0]
    rm = recipe_manager.RecipeManager()
    rm.load_quantization_recipe(recipe)
    with _quiet():
        calib = calibrator.Calibrator(float_content, num_threads=threads, qsv_update_func=_RangeRecorder())
        for i in range(len(inputs)):
            calib.calibrate({key: [{in_name: inputs[i:i + 1]}]}, rm)
            if progress is not None:
                progress(i + 1)
    ins, outs = io_tensor_names(float_content)
    ranges = {name: _reduce(qsv, method, percentile, name in ins or name in outs)
              for name, qsv in calib.get_model_qsvs().items() if qsv}
    if method != "ema":
        ranges.update({n: _widen(ranges[n], output_margin) for n in outs if n in ranges})
    if input_range is not None:
        lo, hi = input_range
        ranges.update({n: {"min": np.full_like(ranges[n]["min"], lo), "max": np.full_like(ranges[n]["max"], hi)}
                       for n in ins if n in ranges})
    return ranges


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Hide ai-edge-quantizer's own tqdm bars and its debugging-mode warning (edge-tl shows its own progress)."""
    with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors.*")
        yield


def check_calib_method(method: str) -> str:
    """``method`` if it is one of :data:`CALIB_METHODS`, else a ConfigError naming the valid ones."""
    if method not in CALIB_METHODS:
        raise ConfigError(f"calibration method '{method}' is not available for TFLite",
                          f"use one of: {', '.join(CALIB_METHODS)}")
    return method


def float_output_recipe(recipe: Any, output_names: list[str]) -> Any:
    """``recipe`` with the logits layer kept in float: the graph output stays float32 and the fully connected
    layer producing it computes in float on dequantised features (no int8 range can clip the logits)."""
    import re

    from ai_edge_quantizer import algorithm_manager, qtyping, recipe_manager

    rm = recipe_manager.RecipeManager()
    rm.load_quantization_recipe(recipe)
    for name in output_names:
        for op in (qtyping.TFLOperationName.OUTPUT, qtyping.TFLOperationName.FULLY_CONNECTED):
            rm.add_quantization_config(regex=re.escape(name), operation_name=op,
                                       algorithm_key=algorithm_manager.AlgorithmName.NO_QUANTIZE)
    return rm.get_quantization_recipe()


def quantize_tflite(float_content: bytes, mode: str, calib_inputs: np.ndarray | None = None, *,
                    method: str = "minmax", percentile: float = 99.99, threads: int = 2,
                    output_margin: float = OUTPUT_MARGIN, output: str = "quantized",
                    progress: Callable[[int], None] | None = None, io_type: str = "int8",
                    input_range: tuple[float, float] | None = None) -> QuantizedTflite:
    """Quantise a float flatbuffer to ``mode`` (one of :data:`QUANT_MODES`).

    ``calib_inputs`` (the float model's NHWC input) are required for ``int8``. ``output`` (int8 only):
    ``quantized`` gives an integer output; ``float`` keeps the logits layer in float (float32 output).
    ``io_type`` (int8 only): ``int8`` (ai-edge-quantizer's own) or ``uint8`` input and integer output
    (:func:`uint8_io`). ``input_range``: see :func:`calibrate`.
    """
    from ai_edge_quantizer import quantizer

    spec = QUANT_MODES.get(mode)
    if spec is None:
        raise ConfigError(f"unknown TFLite quantisation '{mode}'", f"use one of: {', '.join(QUANT_MODES)}")
    if output not in OUTPUTS:
        raise ConfigError(f"unknown int8 output '{output}'", f"use one of: {', '.join(OUTPUTS)}")
    if io_type not in IO_TYPES:
        raise ConfigError(f"unknown int8 input type '{io_type}'", f"use one of: {', '.join(IO_TYPES)}")
    recipe = spec.build()
    _, outs = io_tensor_names(float_content)
    if spec.calibrated and output == "float":
        recipe = float_output_recipe(recipe, outs)
    qsvs = None
    calibration = None
    if spec.calibrated:
        if calib_inputs is None or len(calib_inputs) == 0:
            raise ExportError("full int8 needs calibration images and none were given",
                              "pass images from the run's train split (--calib-size > 0)")
        qsvs = calibrate(float_content, calib_inputs, recipe, method, percentile, threads, output_margin, progress,
                         input_range)
        calibration = Calibration(len(calib_inputs), method,
                                  percentile=percentile if method == "percentile" else None,
                                  output_margin=output_margin if method != "ema" and output == "quantized" else None)
    try:
        with _quiet():
            q = quantizer.Quantizer(bytearray(float_content), recipe)
            result = q.quantize(qsvs, enable_progress_bar=False, enable_progress_report=False)
    except (ValueError, RuntimeError, KeyError, NotImplementedError) as exc:
        raise ExportError(f"ai-edge-quantizer failed to make the {mode} model: {str(exc).splitlines()[0][:200]}",
                          "keep the float model, or try another --quantize") from None
    content = bytes(result.quantized_model)
    if spec.calibrated and io_type == "uint8":
        content = uint8_io(content)
    ranges = {n: (float(np.min(qsvs[n]["min"])), float(np.max(qsvs[n]["max"])))
              for n in outs if qsvs and n in qsvs and output == "quantized"}
    recipe_name = spec.recipe + ("+float_logits" if spec.calibrated and output == "float" else "")
    return QuantizedTflite(content, mode, recipe_name, calibration,
                           float_layers=float_ops(content) if spec.calibrated else (), ranges=ranges,
                           output=output if spec.calibrated else "float",
                           io_type=io_type if spec.calibrated else None)


def float_ops(content: bytes) -> tuple[str, ...]:
    """Operators of a quantised model that still compute in float (their output tensor is float32)."""
    from ai_edge_litert import schema_py_generated as fb

    model = fb.Model.GetRootAs(content, 0)
    sub = model.Subgraphs(0)
    names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    out: list[str] = []
    for i in range(sub.OperatorsLength()):
        op = sub.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
        tensor = sub.Tensors(op.Outputs(0)) if op.OutputsLength() else None
        if tensor is not None and tensor.Type() == fb.TensorType.FLOAT32:
            out.append(f"{names.get(builtin, str(builtin))}:{tensor.Name().decode()}")
    return tuple(out)


# ---- uint8 input/output for full int8 (the layout TFLite Model Maker ships and MediaPipe requires) -----------
IO_TYPES = ("uint8", "int8")


def _quantize_opcode(model: Any, fb: Any) -> int:
    """Index of a QUANTIZE operator code in ``model`` (added when missing)."""
    code = fb.BuiltinOperator.QUANTIZE
    for i, oc in enumerate(model.operatorCodes):
        if max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode)) == code:
            oc.version = max(int(oc.version), 2)
            return i
    oc = fb.OperatorCodeT()
    oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), 2
    model.operatorCodes.append(oc)
    return len(model.operatorCodes) - 1


def _uint8_twin(fb: Any, t: Any, name: str) -> Any:
    """A uint8 tensor with ``t``'s shape and real values (zero point shifted by 128)."""
    import copy

    twin = copy.deepcopy(t)
    twin.name, twin.type, twin.buffer = name.encode(), fb.TensorType.UINT8, 0
    twin.quantization.zeroPoint = [int(z) + 128 for z in t.quantization.zeroPoint]
    return twin


def _requantize_op(fb: Any, opcode: int, src: int, dst: int) -> Any:
    op = fb.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = opcode, [src], [dst]
    op.builtinOptionsType, op.builtinOptions = fb.BuiltinOptions.QuantizeOptions, fb.QuantizeOptionsT()
    return op


def uint8_io(content: bytes, output: bool = True) -> bytes:
    """Give a full-int8 flatbuffer a uint8 input (and, with ``output``, a uint8 output where it is int8).

    A QUANTIZE operator (uint8 -> int8, same scale, zero point - 128) is put in front of the graph, and one
    (int8 -> uint8) after an int8 output; the new tensors take the old names (and the signature's), the int8
    ones get an ``_int8`` suffix. Real values are unchanged, so the calibration still applies exactly.
    """
    from ai_edge_litert import schema_py_generated as fb
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    sub = model.subgraphs[0]
    opcode = _quantize_opcode(model, fb)
    renamed: dict[int, int] = {}
    old_in = sub.inputs[0]
    if sub.tensors[old_in].type == fb.TensorType.INT8:
        t = sub.tensors[old_in]
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        sub.tensors.append(_uint8_twin(fb, t, name))
        t.name = f"{name}_int8".encode()
        new = len(sub.tensors) - 1
        sub.operators.insert(0, _requantize_op(fb, opcode, new, old_in))
        sub.inputs[0] = renamed[old_in] = new
    old_out = sub.outputs[0]
    if output and sub.tensors[old_out].type == fb.TensorType.INT8:
        t = sub.tensors[old_out]
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        sub.tensors.append(_uint8_twin(fb, t, name))
        t.name = f"{name}_int8".encode()
        new = len(sub.tensors) - 1
        sub.operators.append(_requantize_op(fb, opcode, old_out, new))
        sub.outputs[0] = renamed[old_out] = new
    for sig in model.signatureDefs or []:
        for item in [*(sig.inputs or []), *(sig.outputs or [])]:
            item.tensorIndex = renamed.get(item.tensorIndex, item.tensorIndex)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
