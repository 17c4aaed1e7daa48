"""OpenVINO IR export: ``model.xml`` + ``model.bin`` in f32, fp16-compressed weights, bf16-pinned, and NNCF int8.

The float IR is converted by ``openvino.convert_model`` from the same ONNX graph the ONNX exporter writes
(dynamic batch, normalised NCHW float input), so every format starts from one trace. The card rides in the
IR's ``rt_info`` under :data:`~edge_tl.card.CARD_KEY` and beside it as ``model.xml.card.json``, with the
inference precision the artefact is verified and run at (``f32``; ``int8`` for NNCF models, whose remaining
layers run in f32): OpenVINO's CPU plugin would otherwise pick bf16 on CPUs with AMX-BF16.

``fp16`` is ``compress_to_fp16``: half-size weights, decompressed at load, computed in f32. ``int8`` is NNCF
post-training quantisation calibrated on the same real train images as the other formats; the accuracy budget
(:mod:`edge_tl.export.openvino_quant`) runs NNCF's accuracy control and edge-tl's own float-fallback search and
keeps the better. ``bf16`` (``--openvino-precision bf16``) is ``model_bf16.xml``: the float IR with its card
pinned to bf16 compute, verified in bf16 by the parity gate (needs a CPU with bf16).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from edge_tl._io import ensure_writable_dir
from edge_tl.card import CARD_KEY, ModelCard, library_versions, sidecar_path
from edge_tl.errors import ArtifactError, BackendMissingError, ConfigError, ExportError
from edge_tl.export.registry import (
    Artifact,
    ExportRequest,
    artifact_card,
    register_card_writer,
    register_exporter,
)
from edge_tl.records import QuantRecipe

FP16_RECIPE = "OpenVINO compress_to_fp16 (fp16 weights, f32 compute)"


def _ov() -> Any:
    try:
        import openvino as ov
    except ImportError:
        raise BackendMissingError("openvino", "export OpenVINO IR") from None
    return ov


def bin_path(xml: Path) -> Path:
    """The weights file beside an IR: ``model.xml`` -> ``model.bin``."""
    return Path(xml).with_suffix(".bin")


def save_ir(model: Any, path: Path, card: ModelCard, compress_to_fp16: bool = False) -> Path:
    """Put ``card`` in ``model``'s rt_info and write ``path`` (.xml) and its .bin atomically, plus the sidecar."""
    ov = _ov()
    path = Path(path)
    ensure_writable_dir(path.parent)
    model.set_rt_info(card.dumps(), [CARD_KEY])
    with tempfile.TemporaryDirectory(prefix=f".{path.stem}.", dir=path.parent) as tmp:
        tmp_xml = Path(tmp) / path.name
        try:
            ov.save_model(model, str(tmp_xml), compress_to_fp16=compress_to_fp16)
        except RuntimeError as exc:
            raise ExportError(f"OpenVINO could not write {path.name}: {_first_line(exc)}") from None
        os.replace(bin_path(tmp_xml), bin_path(path))  # weights first: an .xml never points at missing weights
        os.replace(tmp_xml, path)
    card.save(sidecar_path(path))
    return path


def read_ir(path: Path) -> Any:
    """``ov.Model`` of an IR written by edge-tl (raises :class:`ArtifactError` when unreadable)."""
    ov = _ov()
    try:
        return ov.Core().read_model(str(path))
    except RuntimeError as exc:
        raise ArtifactError(f"cannot re-read {path}: {_first_line(exc)}", "re-export with --force") from None


@register_card_writer("openvino")
def write_ir_card(path: Path, card: ModelCard) -> None:
    """Replace the card inside an existing IR (rt_info) and its sidecar (atomically)."""
    save_ir(read_ir(path), path, card)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def ir_card(req: ExportRequest, precision: str, quantization: QuantRecipe | None = None) -> ModelCard:
    """The card of a new IR: the run's card, NCHW float input, the precision it runs at, OpenVINO versions."""
    card = artifact_card(req, quantization=quantization)
    return card.with_(precision=precision, versions={**card.versions, **library_versions("openvino", "nncf")})


def require_float_ir(req: ExportRequest) -> Path:
    """The float ``model.xml`` a derived variant starts from (the driver writes it first)."""
    if req.float_path is None or not Path(req.float_path).exists():
        raise ExportError(f"{req.out_path.name} needs the float model.xml first", "export --quantize none first")
    return Path(req.float_path)


@register_exporter("openvino", "none", filename="model.xml")
def export_openvino_float(req: ExportRequest) -> Artifact:
    """f32 IR from the run's PyTorch model (through the ONNX exporter's trace)."""
    import onnx

    from edge_tl.export.onnx_export import export_float_proto

    ov = _ov()
    t0 = time.perf_counter()
    proto = export_float_proto(req.model, req.card.input.size, req.options.opset)
    with tempfile.TemporaryDirectory(prefix="edge_tl_ov_") as tmp:
        src = Path(tmp) / "model.onnx"
        onnx.save_model(proto, str(src), save_as_external_data=False)
        try:
            model = ov.convert_model(str(src))
        except Exception as exc:  # noqa: BLE001 - the converter raises its own and plain errors
            from edge_tl.runtimes.openvino_rt import describe_error

            raise ExportError(f"OpenVINO cannot convert {req.card.backbone}: {describe_error(exc)}",
                              "the other formats are unaffected; export them with --format onnx,tflite") from None
    card = ir_card(req, "f32")
    save_ir(model, req.out_path, card)
    return Artifact(req.out_path, card, "openvino", "none", time.perf_counter() - t0)


@register_exporter("openvino", "fp16", filename="model_fp16.xml")
def export_openvino_fp16(req: ExportRequest) -> Artifact:
    """fp16-compressed weights (half the size); computed in f32 on the CPU."""
    t0 = time.perf_counter()
    model = read_ir(require_float_ir(req))
    model.set_rt_info("", [CARD_KEY])
    recipe = QuantRecipe(mode="fp16", recipe=FP16_RECIPE)
    card = ir_card(req, "f32", recipe)
    save_ir(model, req.out_path, card, compress_to_fp16=True)
    return Artifact(req.out_path, card, "openvino", "fp16", time.perf_counter() - t0,
                    ("fp16 IR halves the size; the CPU decompresses the weights and computes in f32 (no speed-up)",))


BF16_RECIPE = "f32 IR pinned to bf16 compute (OpenVINO INFERENCE_PRECISION_HINT bf16, AMX / AVX512-BF16)"


@register_exporter("openvino", "bf16", filename="model_bf16.xml")
def export_openvino_bf16(req: ExportRequest) -> Artifact:
    """The float IR with its card pinned to bf16: edge-tl's runtime compiles it in bf16 and refuses a CPU that
    would not, so the file runs (and was verified) at the precision it states."""
    ov = _ov()
    if "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        raise ConfigError("this CPU has no bf16 support, so model_bf16.xml could not be verified or run here",
                          "export it on a CPU with AMX or AVX512-BF16, or use --openvino-precision f32")
    t0 = time.perf_counter()
    model = read_ir(require_float_ir(req))
    model.set_rt_info("", [CARD_KEY])
    recipe = QuantRecipe(mode="bf16", recipe=BF16_RECIPE)
    card = ir_card(req, "bf16", recipe)
    save_ir(model, req.out_path, card)
    return Artifact(req.out_path, card, "openvino", "bf16", time.perf_counter() - t0,
                    ("bf16 IR: same weights as model.xml, computed in bf16; runs only where the CPU has bf16",))
