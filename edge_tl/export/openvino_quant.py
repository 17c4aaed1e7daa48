"""OpenVINO int8: NNCF post-training quantisation of the float IR, and its accuracy budget.

Calibration uses the same real train images as the ONNX and TFLite quantisers (``req.calibration``), one image
per NNCF sample. With ``--int8-output float`` (default) the layer producing the logits is left out of
quantisation (NNCF ``IgnoredScope``), as in the other formats. NNCF picks its own activation ranges (min/max
with fast bias correction); ``--calib-method`` applies to the ONNX and TFLite quantisers.

Accuracy budget: the int8 IR's top-1 drop and agreement are measured against the float IR (both run by edge-tl's
OpenVINO runtime in f32) on the run's validation images. Over ``--max-drop`` (or under ``--min-agreement``),
NNCF's ``quantize_with_accuracy_control`` re-quantises, reverting the most harmful layers to float until the
drop on those images fits; the card records both measurements. Any NNCF failure keeps the float IR.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from edge_tl.data.preprocess import normalize
from edge_tl.errors import DataError, EdgeTLError, ExportError
from edge_tl.export.openvino_export import _first_line, ir_card, read_ir, require_float_ir, save_ir
from edge_tl.export.registry import Artifact, ExportRequest, register_exporter

CALIB_BATCH = 16
RECIPE = "NNCF post-training quantisation (OpenVINO IR, preset performance, fast bias correction)"
_PASS_THROUGH = {"Add", "Reshape", "Squeeze", "Flatten", "Convert"}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """NNCF's INFO lines off, its progress bars on stderr (stdout belongs to the command's results)."""
    log = logging.getLogger("nncf")
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        log.setLevel(level)


def logits_layer(model: Any) -> list[str]:
    """Name of the MatMul/Convolution that produces the logits (walking up through bias Adds and reshapes)."""
    node = model.outputs[0].get_node().input_value(0).get_node()
    for _ in range(8):
        kind = node.get_type_name()
        if kind in ("MatMul", "Convolution"):
            return [node.get_friendly_name()]
        if kind not in _PASS_THROUGH:
            return []
        node = node.input_value(0).get_node()
    return []


def _calibration_images(req: ExportRequest) -> list[np.ndarray]:
    if req.calibration is None:
        raise DataError("no calibration images were supplied", "export from a run with a train split")
    items = [b[i:i + 1] for b in req.calibration(CALIB_BATCH) for i in range(len(b))]
    if not items:
        raise DataError("no calibration images were read", "check the run's train split")
    return items


def _dataset(nncf: Any, pixels: list[np.ndarray] | np.ndarray, spec: Any) -> Any:
    return nncf.Dataset(list(pixels), lambda x: normalize(np.asarray(x), spec, "NCHW"))


def _top1(model: Any, pixels: np.ndarray, spec: Any, precision: str) -> np.ndarray:
    """Logits of an in-memory ``ov.Model`` on uint8 ``pixels``, compiled at an explicit ``precision``."""
    import openvino as ov

    from edge_tl.runtimes.openvino_rt import HINTS

    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": HINTS[precision]})
    outs = [compiled(normalize(pixels[i:i + 32], spec, "NCHW"))[0] for i in range(0, len(pixels), 32)]
    return np.concatenate(outs).argmax(1)


@register_exporter("openvino", "int8", filename="model_int8.xml", needs_calibration=True, own_budget=True)
def export_openvino_int8(req: ExportRequest) -> Artifact:
    """NNCF int8 IR calibrated on the run's train images; NNCF accuracy control when over the budget."""
    try:
        import nncf
    except ImportError:
        from edge_tl.errors import BackendMissingError

        raise BackendMissingError("nncf", "quantise OpenVINO IR to int8") from None
    t0 = time.perf_counter()
    src = require_float_ir(req)
    spec, opts = req.card.input, req.options
    images = _calibration_images(req)
    model = read_ir(src)
    ignored = logits_layer(model) if opts.output == "float" else []
    kwargs = {"preset": nncf.QuantizationPreset.PERFORMANCE, "target_device": nncf.TargetDevice.CPU,
              "subset_size": len(images), "fast_bias_correction": True,
              "ignored_scope": nncf.IgnoredScope(names=ignored, validate=False) if ignored else None}
    try:
        with _quiet():
            quantized = nncf.quantize(model, _dataset(nncf, images, spec), **kwargs)
    except EdgeTLError:
        raise
    except Exception as exc:  # noqa: BLE001 - NNCF raises many unrelated types
        raise ExportError(f"NNCF quantisation of {src.name} ({req.card.backbone}) failed: {_first_line(exc)}",
                          f"the float {src.name} was kept") from None
    recipe: dict[str, Any] = {"mode": "int8", "recipe": RECIPE, "output": opts.output,
                              "calibration": {"images": len(images), "method": "nncf", "split": opts.calib_split},
                              "float_layers": ignored}
    notes: tuple[str, ...] = ()
    if opts.calib_method != "minmax":
        notes = (f"--calib-method {opts.calib_method} applies to ONNX/TFLite; NNCF chose its own ranges",)
    if req.manifest is not None and opts.fallback:
        quantized, budget, note = _budget(nncf, model, quantized, req, images, kwargs)
        recipe["budget"] = budget
        notes += (note,) if note else ()
    card = ir_card(req, "int8", recipe)
    save_ir(quantized, req.out_path, card)
    return Artifact(req.out_path, card, "openvino", "int8", time.perf_counter() - t0, notes)


def _budget(nncf: Any, float_model: Any, quantized: Any, req: ExportRequest, images: list[np.ndarray],
            kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any], str | None]:
    """Measure the int8 drop on validation images; over budget, NNCF accuracy control. Returns the model to keep."""
    from edge_tl.export.budget import budget_images

    opts, spec = req.options, req.card.input
    files = getattr(req.calibration, "files", ())
    pixels, labels, split = budget_images(req.manifest, spec, exclude=files)
    ref = _top1(float_model, pixels, spec, "f32")
    float_acc = float((ref == labels).mean())

    def measure(m: Any) -> tuple[float, float, float]:
        top = _top1(m, pixels, spec, "int8")
        acc = float((top == labels).mean())
        return acc, 100.0 * (float_acc - acc), float((top == ref).mean())

    acc, drop, agree = measure(quantized)
    record: dict[str, Any] = {"max_drop": opts.max_drop, "min_agreement": opts.min_agreement, "split": split,
                              "images": len(labels), "float_accuracy": float_acc, "int8_accuracy": acc,
                              "drop": drop, "agreement": agree, "fallback_layers": [], "method": "nncf",
                              "fits": drop <= opts.max_drop and agree >= opts.min_agreement}
    if record["fits"]:
        return quantized, record, None

    def validate(compiled: Any, items: Any) -> float:  # NNCF passes the raw items: (pixels, label) pairs
        hits = [int(compiled(normalize(x, spec, "NCHW"))[0].argmax(1)[0] == y) for x, y in items]
        return float(np.mean(hits)) if hits else 0.0

    val = nncf.Dataset([(pixels[i:i + 1], int(labels[i])) for i in range(len(pixels))],
                       lambda item: normalize(item[0], spec, "NCHW"))
    try:
        with _quiet():
            controlled = nncf.quantize_with_accuracy_control(
                float_model, _dataset(nncf, images, spec), val, validate, max_drop=opts.max_drop / 100.0,
                drop_type=nncf.DropType.ABSOLUTE, **kwargs)
    except Exception as exc:  # noqa: BLE001 - NNCF raises many unrelated types
        record["accuracy_control_error"] = _first_line(exc)
        return quantized, record, f"NNCF accuracy control failed ({_first_line(exc)}); kept the plain int8 IR"
    acc2, drop2, agree2 = measure(controlled)
    reverted = _float_ops(controlled, quantized)
    record.update(drop_before=drop, agreement_before=agree, int8_accuracy=acc2, drop=drop2, agreement=agree2,
                  fallback_layers=reverted, method="nncf quantize_with_accuracy_control",
                  fits=drop2 <= opts.max_drop and agree2 >= opts.min_agreement)
    verdict = "fits" if record["fits"] else "still over budget"
    return controlled, record, (f"accuracy budget (NNCF accuracy control): drop {drop:.2f} -> {drop2:.2f} pt, "
                                f"agreement {100 * agree:.1f} -> {100 * agree2:.1f} % on {len(labels)} {split} "
                                f"images, {len(reverted)} layer(s) reverted to float ({verdict})")


def _quantized_inputs(model: Any) -> set[str]:
    """Names of the ops fed by a FakeQuantize (the layers that run in int8)."""
    out = set()
    for op in model.get_ops():
        if op.get_type_name() == "FakeQuantize":
            for target in op.output(0).get_target_inputs():
                out.add(target.get_node().get_friendly_name())
    return out


def _float_ops(controlled: Any, quantized: Any) -> list[str]:
    """Layers quantised in the plain int8 model that accuracy control left in float."""
    return sorted(_quantized_inputs(quantized) - _quantized_inputs(controlled))

