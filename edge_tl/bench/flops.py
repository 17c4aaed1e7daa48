"""Parameters and multiply-accumulates per image, counted from the artefact itself.

ONNX: from the graph (shape inference; Conv/ConvInteger/QLinearConv, Gemm/MatMul/MatMulInteger/QLinearMatMul).
TFLite: from the interpreter's op list (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, BATCH_MATMUL).
OpenVINO IR: from the model reshaped to batch 1 (Convolution, GroupConvolution, MatMul; weights and their bias
Adds as parameters). PyTorch: ``torch.utils.flop_counter`` on one image. Quantisation does not change the count;
achieved GFLOP/s in the table is ``2 * MACs / latency``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import Any

from edge_tl.errors import ArtifactError
from edge_tl.registry import Registry


@dataclass(frozen=True)
class Complexity:
    """Weights and multiply-accumulates per image."""

    params: int
    macs: int


Counter = Callable[[Path], Complexity]
COUNTERS: Registry[Counter] = Registry("complexity counter")


def register_counter(fmt: str) -> Callable[[Counter], Counter]:
    """Register ``counter(path) -> Complexity`` for artefacts of card format ``fmt``."""
    return COUNTERS.register(fmt)


def complexity(path: Path, fmt: str) -> Complexity | None:
    """Params/MACs of ``path`` (card format ``fmt``), or None for a format without a counter."""
    counter = COUNTERS.find(fmt)
    return counter(Path(path)) if counter else None


# ---------------------------------------------------------------- ONNX
_ONNX_WEIGHT_INPUT = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3}
_ONNX_MATMUL = {"Gemm": (0, 1), "MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3)}
_QUANT_PARAM_OPS = {"QuantizeLinear": (1, 2), "DequantizeLinear": (1, 2), "QLinearConv": (1, 2, 4, 5, 6, 7),
                    "QLinearMatMul": (1, 2, 4, 5, 6, 7), "ConvInteger": (2, 3), "MatMulInteger": (2, 3)}


def _onnx_shapes(model: Any) -> dict[str, list[int]]:
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except onnx.shape_inference.InferenceError as exc:
        raise ArtifactError(f"cannot infer the shapes of this ONNX graph ({str(exc)[:120]})",
                            "re-export it with edge-tl export") from None
    shapes: dict[str, list[int]] = {t.name: list(t.dims) for t in model.graph.initializer}
    g = inferred.graph
    for vi in [*g.input, *g.value_info, *g.output]:
        dims = vi.type.tensor_type.shape.dim
        shapes.setdefault(vi.name, [d.dim_value if d.HasField("dim_value") else 1 for d in dims])
    return shapes


@register_counter("onnx")
def count_onnx(path: Path) -> Complexity:
    """Count from the ONNX graph; the batch dimension is taken as 1 whatever the file declares."""
    from edge_tl.runtimes.onnx_rt import read_model

    model = read_model(path)
    shapes = _onnx_shapes(model)
    producer = {o: n for n in model.graph.node for o in n.output}

    def weight_shape(name: str) -> list[int] | None:
        node = producer.get(name)  # a QDQ weight: initializer -> DequantizeLinear -> Conv
        while name not in shapes and node is not None and node.input:
            name, node = node.input[0], producer.get(node.input[0])
        return shapes.get(name)

    macs, qparams = 0, set()
    for node in model.graph.node:
        for i in _QUANT_PARAM_OPS.get(node.op_type, ()):
            if i < len(node.input):
                qparams.add(node.input[i])
        out = shapes.get(node.output[0]) if node.output else None
        if node.op_type in _ONNX_WEIGHT_INPUT and out:
            w = weight_shape(node.input[_ONNX_WEIGHT_INPUT[node.op_type]])
            if w:
                macs += prod(out[1:]) * prod(w[1:])
        elif node.op_type in _ONNX_MATMUL and out:
            a, b = (weight_shape(node.input[i]) for i in _ONNX_MATMUL[node.op_type])
            if a and b:
                trans_a = any(at.name == "transA" and at.i for at in node.attribute)
                k = a[-2] if trans_a and node.op_type == "Gemm" else a[-1]
                macs += prod(out[1:]) * k if len(out) > 1 else prod(out) * k
    params = sum(prod(t.dims) for t in model.graph.initializer if t.name not in qparams)
    return Complexity(params=int(params), macs=int(macs))


# ---------------------------------------------------------------- OpenVINO
_OV_LAYERS = ("Convolution", "GroupConvolution", "MatMul")


@register_counter("openvino")
def count_openvino(path: Path) -> Complexity:
    """Count from the IR with its batch set to 1 (no compilation, no inference)."""
    try:
        import openvino as ov
    except ImportError:
        raise ArtifactError("openvino is not installed, so the IR cannot be counted", "pip install openvino") from None
    try:
        model = ov.Core().read_model(str(path))
        shape = model.inputs[0].get_partial_shape()
        model.reshape({model.inputs[0]: [1, *(d.get_length() for d in list(shape)[1:])]})
    except RuntimeError as exc:
        raise ArtifactError(f"cannot count {path.name}: {str(exc).strip()[:120]}") from None
    macs = params = 0
    for op in model.get_ops():
        if op.get_type_name() not in _OV_LAYERS:
            continue
        out = list(op.get_output_shape(0))
        w = list(op.get_input_shape(1))
        params += prod(w)
        if op.get_type_name() == "MatMul":
            a = list(op.get_input_shape(0))
            macs += prod(out) * (a[-2] if op.get_transpose_a() else a[-1])
        else:  # Convolution weights [Co, Ci, kh, kw]; GroupConvolution [G, Co/G, Ci/G, kh, kw]
            per_out = prod(w[1:]) if op.get_type_name() == "Convolution" else prod(w[2:])
            macs += prod(out) * per_out
        for target in op.output(0).get_target_inputs():
            add = target.get_node()
            if add.get_type_name() == "Add":
                other = add.input_value(1 - target.get_index()).get_node()
                if other.get_type_name() == "Convert":  # fp16-compressed constant
                    other = other.input_value(0).get_node()
                params += prod(other.get_output_shape(0)) if other.get_type_name() == "Constant" else 0
    return Complexity(params=int(params), macs=int(macs))


# ---------------------------------------------------------------- TFLite
@register_counter("tflite")
def count_tflite(path: Path) -> Complexity:
    """Count from the op list of the LiteRT interpreter the runtime builds (no inference run)."""
    from edge_tl.runtimes.litert_rt import make_interpreter

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc.strerror}", "check the path") from None
    it = make_interpreter(data, 1, path)
    tensors = {t["index"]: t for t in it.get_tensor_details()}

    def shape(i: int) -> list[int]:
        return [int(v) for v in tensors[i]["shape"]] if i in tensors else []

    macs, weights = 0, set[int]()
    for op in it._get_ops_details():
        name, ins, outs = op["op_name"], list(op["inputs"]), list(op["outputs"])
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL") and len(ins) > 1 and outs:
            out, w = shape(outs[0]), shape(ins[1])
            weights.update(i for i in ins[1:] if i >= 0)
            if not out or not w:
                continue
            if name == "CONV_2D":
                macs += prod(out[1:]) * prod(w[1:])
            elif name == "DEPTHWISE_CONV_2D":
                macs += prod(out[1:]) * w[1] * w[2]
            elif name == "FULLY_CONNECTED":
                macs += prod(out[1:]) * w[-1]
            else:
                macs += prod(out[1:]) * shape(ins[0])[-1]
    params = sum(prod(shape(i)) for i in weights)
    return Complexity(params=int(params), macs=int(macs))


# ---------------------------------------------------------------- PyTorch
@register_counter("pytorch")
def count_torch(path: Path) -> Complexity:
    """Count with ``torch.utils.flop_counter`` on one image of the checkpoint's input size."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from edge_tl.models.checkpoint import load_checkpoint

    model, card = load_checkpoint(Path(path))
    model.eval()
    x = torch.zeros(1, 3, card.input.size, card.input.size)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(x)
    params = sum(p.numel() for p in model.parameters())
    return Complexity(params=int(params), macs=int(counter.get_total_flops() // 2))
