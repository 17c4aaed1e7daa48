"""ONNX export: float32 (``torch.onnx.export``, dynamo path) and fp16, one self-contained file each.

The float file: opset >= 17, input ``input`` (normalised float NCHW) with a dynamic batch axis, output
``logits``, weights embedded (the exported program's ``model_proto`` is saved directly, so no ``.onnx.data``),
simplified with onnxslim, the card in ``metadata_props[CARD_KEY]`` and beside it as ``<file name>.card.json``.
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

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def set_card(proto: Any, card: ModelCard) -> Any:
    """Put ``card`` into ``proto.metadata_props[CARD_KEY]`` (replacing any previous one); return ``proto``."""
    keep = [(p.key, p.value) for p in proto.metadata_props if p.key != CARD_KEY]
    del proto.metadata_props[:]
    for k, v in [*keep, (CARD_KEY, card.dumps())]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    return proto


def save_onnx(proto: Any, path: Path, card: ModelCard) -> Path:
    """Embed ``card`` and write ``proto`` to ``path`` as one file (atomic), plus the sidecar card."""
    import onnx

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
    recipe = {"mode": "fp16", "recipe": "onnxruntime.transformers.float16 (keep_io_types=True)",
              "calibration": None, "float_layers": []}
    card = artifact_card(req, quantization=recipe)
    save_onnx(half, req.out_path, card)
    return Artifact(req.out_path, card, "onnx", "fp16", time.perf_counter() - t0,
                    ("fp16 halves the size but runs slower than fp32 on x86 CPUs in ONNX Runtime (measured 1.1-1.7x)",))
