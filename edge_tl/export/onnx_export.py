"""ONNX export: float32 (``torch.onnx.export``, dynamo path) and fp16, one self-contained file each.

The float file: opset >= 17, input ``input`` (normalised float NCHW) with a dynamic batch axis, output
``logits``, weights embedded (the exported program's ``model_proto`` is saved directly, so no ``.onnx.data``),
simplified with onnxslim, the card in ``metadata_props[CARD_KEY]`` (with plain ``names``/``imgsz``/``mean``/``std``
keys other tools display) and beside it as ``<file name>.card.json``. Every file gives the same predictions in a
plain ``onnxruntime.InferenceSession(path)`` (see :func:`keep_float_weights`).
fp16 uses ONNX Runtime's own converter (``onnxruntime.transformers.float16``, ``keep_io_types=True``): inputs and
outputs stay float32, so callers never see half precision.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from edge_tl._io import atomic_path
from edge_tl.card import CARD_KEY, ModelCard, sidecar_path
from edge_tl.errors import ArtifactError, ExportError
from edge_tl.export.registry import (
    Artifact,
    ExportRequest,
    artifact_card,
    register_card_writer,
    register_exporter,
)
from edge_tl.records import QuantRecipe

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def plain_metadata(card: ModelCard) -> dict[str, str]:
    """The keys other tools display (Netron, Ultralytics-style readers): class names, input size, normalisation."""
    names = "{" + ", ".join(f"{i}: {name!r}" for i, name in enumerate(card.classes)) + "}"
    return {"names": names, "imgsz": f"[{card.input.size}, {card.input.size}]",
            "mean": str(list(card.input.mean)), "std": str(list(card.input.std)), "layout": card.input.layout}


def set_card(proto: Any, card: ModelCard) -> Any:
    """Put ``card`` into ``proto.metadata_props[CARD_KEY]`` and :func:`plain_metadata` beside it (replacing any
    previous ones); return ``proto``."""
    plain = plain_metadata(card)
    keep = [(p.key, p.value) for p in proto.metadata_props if p.key != CARD_KEY and p.key not in plain]
    del proto.metadata_props[:]
    for k, v in [*keep, *plain.items(), (CARD_KEY, card.dumps())]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    return proto


_FLOAT_WEIGHT_OPS = ("Conv", "ConvTranspose", "Gemm")


def _channels(node: Any, weight: Any) -> tuple[int, int]:
    """(axis, length) of the channel axis of ``node``'s first input, from its weight's shape."""
    attrs = {a.name: a.i for a in node.attribute}
    dims = list(weight.dims)
    if node.op_type == "Conv":
        return 1, dims[1] * attrs.get("group", 1)
    if node.op_type == "ConvTranspose":
        return 1, dims[0]
    return (0 if attrs.get("transA", 0) else 1), (dims[1] if attrs.get("transB", 0) else dims[0])


def keep_float_weights(proto: Any) -> Any:
    """Give every Conv/ConvTranspose/Gemm that keeps float weights behind a quantised input (the float logits
    layer, float-fallback layers) its own per-channel ``DequantizeLinear`` (same values, one per channel).

    ONNX Runtime's default ``WeightBiasQuantization`` pass re-quantises, per tensor, the float weights of exactly
    these layers when their input comes from a per-tensor ``DequantizeLinear``; the per-channel one leaves them
    alone, so a plain ``InferenceSession(path)`` computes them in float as the file says. Returns ``proto``.
    """
    from onnx import helper, numpy_helper

    g = proto.graph
    inits = {t.name: t for t in g.initializer}
    producers = {o: n for n in g.node for o in n.output}
    for node in list(g.node):
        if node.op_type not in _FLOAT_WEIGHT_OPS or len(node.input) < 2:
            continue
        dq, weight = producers.get(node.input[0]), inits.get(node.input[1])
        if dq is None or dq.op_type != "DequantizeLinear" or weight is None or weight.data_type != 1:
            continue
        scale = inits.get(dq.input[1])
        zp = inits.get(dq.input[2]) if len(dq.input) > 2 else None
        if scale is None or len(scale.dims) != 0 or (len(dq.input) > 2 and zp is None):
            continue
        axis, n = _channels(node, weight)
        base = f"{node.name or node.output[0]}_input"
        new_inputs = [dq.input[0], f"{base}_scale"]
        g.initializer.append(numpy_helper.from_array(numpy_helper.to_array(scale).repeat(n), f"{base}_scale"))
        if zp is not None:
            g.initializer.append(numpy_helper.from_array(numpy_helper.to_array(zp).repeat(n), f"{base}_zp"))
            new_inputs.append(f"{base}_zp")
        g.node.insert(list(g.node).index(node), helper.make_node(
            "DequantizeLinear", new_inputs, [f"{base}_dq"], name=f"{base}_dq", axis=axis))
        node.input[0] = f"{base}_dq"
    return proto


def save_onnx(proto: Any, path: Path, card: ModelCard) -> Path:
    """Embed ``card``, protect float layers (:func:`keep_float_weights`) and write ``proto`` to ``path`` as one
    file (atomic), plus the sidecar card."""
    import onnx

    keep_float_weights(proto)
    set_card(proto, card)
    with atomic_path(path) as tmp:
        onnx.save_model(proto, str(tmp), save_as_external_data=False)
    card.save(sidecar_path(path))
    return path


@register_card_writer("onnx")
def write_onnx_card(path: Path, card: ModelCard) -> None:
    """Replace the card inside an existing ``.onnx`` file and its sidecar (atomically)."""
    import onnx

    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf raises several unrelated types
        raise ArtifactError(f"cannot re-read {path}: {exc}", "re-export with --force") from None
    save_onnx(proto, path, card)


def export_float_proto(model: Any, size: int, opset: int) -> Any:
    """Trace ``model`` (normalised NCHW float input ``size`` px) to a simplified, self-contained ModelProto."""
    import onnxslim
    import torch

    model = model.eval().cpu()
    example = (torch.zeros(2, 3, size, size),)
    batch = torch.export.Dim("batch", min=1, max=65536)
    try:
        program = torch.onnx.export(model, example, None, dynamo=True, input_names=[INPUT_NAME],
                                    output_names=[OUTPUT_NAME], opset_version=opset,
                                    dynamic_shapes=({0: batch},), external_data=False, verbose=False)
    except Exception as exc:
        raise ExportError(f"torch.onnx.export failed for {type(model).__name__}: {_first_line(exc)}",
                          "run with --debug for the full trace; try another --opset") from exc
    proto = program.model_proto
    try:
        slim = onnxslim.slim(proto)
    except Exception as exc:
        raise ExportError(f"onnxslim failed on the exported graph: {_first_line(exc)}") from exc
    return slim if slim is not None else proto


def require_float(req: ExportRequest) -> Path:
    """The float ``model.onnx`` a derived variant starts from (the driver writes it first)."""
    if req.float_path is None or not Path(req.float_path).exists():
        raise ExportError(f"{req.out_path.name} needs the float model.onnx first", "export --quantize none first")
    return Path(req.float_path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


@register_exporter("onnx", "none", filename="model.onnx")
def export_onnx_float(req: ExportRequest) -> Artifact:
    """fp32 ONNX from the run's PyTorch model."""
    t0 = time.perf_counter()
    proto = export_float_proto(req.model, req.card.input.size, req.options.opset)
    card = artifact_card(req)
    save_onnx(proto, req.out_path, card)
    return Artifact(req.out_path, card, "onnx", "none", time.perf_counter() - t0)


@register_exporter("onnx", "fp16", filename="model_fp16.onnx")
def export_onnx_fp16(req: ExportRequest) -> Artifact:
    """fp16 weights and activations, float32 input/output (onnxruntime.transformers.float16)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    t0 = time.perf_counter()
    src = require_float(req)
    try:
        half = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    except Exception as exc:
        raise ExportError(f"fp16 conversion of {src.name} ({req.card.backbone}) failed: {_first_line(exc)}",
                          "the float model.onnx was kept; use --quantize none or int8") from exc
    recipe = QuantRecipe(mode="fp16", recipe="onnxruntime.transformers.float16 (keep_io_types=True)")
    card = artifact_card(req, quantization=recipe)
    save_onnx(half, req.out_path, card)
    return Artifact(req.out_path, card, "onnx", "fp16", time.perf_counter() - t0,
                    ("fp16 halves the size but runs slower than fp32 on x86 CPUs in ONNX Runtime (measured 1.1-1.7x)",))
