"""OpenVINO int8: NNCF post-training quantisation of the float IR, and its accuracy budget.

Calibration uses the same real train images as the ONNX and TFLite quantisers (``req.calibration``), one image
per NNCF sample. With ``--int8-output float`` (default) the layer producing the logits is left out of
quantisation (NNCF ``IgnoredScope``), as in the other formats. NNCF picks its own activation ranges (min/max
with fast bias correction); ``--calib-method`` applies to the ONNX and TFLite quantisers.

Accuracy budget: the int8 IR's top-1 drop and agreement are measured against the float IR (both run by edge-tl's
OpenVINO runtime in f32) on the parity gate's images, with its rule (:func:`edge_tl.parity.fidelity_set`: every
image of the run not used for calibration; :func:`edge_tl.parity.drop_limit`), so the budget and the gate agree.
Over ``--max-drop`` (or under ``--min-agreement``), two
repairs run and the better one is kept: NNCF's ``quantize_with_accuracy_control`` (re-quantises, reverting the
most harmful layers to float) and edge-tl's own float-fallback search on the IR (the ONNX/TFLite search, with
layers routed around their quantisers: :mod:`edge_tl.export.sensitivity_openvino`). Better means: fits the
budget at the lower 1-thread latency, else the smaller drop. The card records both outcomes (drop, agreement,
latency, layers kept float) under ``budget.candidates``. A failed repair is recorded and skipped; a failed
``nncf.quantize`` keeps the float IR.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np

from edge_tl.card import ModelCard
from edge_tl.data.preprocess import normalize
from edge_tl.errors import DataError, EdgeTLError, ExportError
from edge_tl.export.openvino_export import _first_line, ir_card, read_ir, require_float_ir, save_ir
from edge_tl.export.registry import Artifact, ExportRequest, register_exporter
from edge_tl.progress import of
from edge_tl.records import BudgetRecord, Calibration, QuantRecipe
from edge_tl.runtimes import default_threads

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


def variant_card(req: ExportRequest) -> ModelCard:
    """The card of the in-memory IRs built here: the run's input and classes, as the float IR takes them."""
    return req.card.with_(format="openvino", input=replace(req.card.input, layout="NCHW"))


def _top1(model: Any, pixels: np.ndarray, card: ModelCard, precision: str, threads: int | None) -> np.ndarray:
    """Top-1 classes of an in-memory ``ov.Model`` on uint8 ``pixels``, run at an explicit ``precision``."""
    from edge_tl.runtimes.openvino_rt import OpenVinoRuntime

    return OpenVinoRuntime.from_model(model, card, threads, precision, dynamic_batch=True)(pixels).argmax(1)


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
    recipe = QuantRecipe(mode="int8", recipe=RECIPE, output=opts.output,
                         calibration=Calibration(len(images), "nncf", opts.calib_split), float_layers=tuple(ignored))
    notes: tuple[str, ...] = ()
    if opts.calib_method != "minmax":
        notes = (f"--calib-method {opts.calib_method} applies to ONNX/TFLite; NNCF chose its own ranges",)
    if req.manifest is not None and opts.fallback:
        quantized, budget, note = _budget(nncf, model, quantized, req, images, kwargs)
        recipe = recipe.with_(budget=budget)
        notes += (note,) if note else ()
    card = ir_card(req, "int8", recipe)
    save_ir(quantized, req.out_path, card)
    return Artifact(req.out_path, card, "openvino", "int8", time.perf_counter() - t0, notes)


def _budget(nncf: Any, float_model: Any, quantized: Any, req: ExportRequest, images: list[np.ndarray],
            kwargs: dict[str, Any]) -> tuple[Any, BudgetRecord, str | None]:
    """Measure the int8 drop on validation images; over budget, run both repairs and keep the better one.

    The repairs are NNCF's accuracy control and edge-tl's own float-fallback search on the IR
    (:mod:`edge_tl.export.sensitivity_openvino`). Both are measured on the same images against the same float
    IR, and timed at 1 thread; the kept one fits the budget at the lower latency, else has the smaller drop.
    """
    from edge_tl.parity import drop_limit, fidelity_set, wilson_interval

    opts, spec = req.options, req.card.input
    fid = req.fidelity or fidelity_set(req.manifest, spec, exclude=getattr(req.calibration, "files", ()))
    pixels, labels, split = fid.pixels, fid.labels, fid.description  # the gate's images, and its rule below
    limit = drop_limit(opts.max_drop, len(labels))
    card = variant_card(req)
    ref = _top1(float_model, pixels, card, "f32", opts.threads)
    float_acc = float((ref == labels).mean())

    def measure(m: Any) -> dict[str, Any]:
        top = _top1(m, pixels, card, "int8", opts.threads)
        acc, agree = float((top == labels).mean()), float((top == ref).mean())
        drop = 100.0 * (float_acc - acc)
        return {"int8_accuracy": acc, "drop": drop, "agreement": agree,
                "fits": drop <= limit + 1e-9 and agree >= opts.min_agreement}

    plain = measure(quantized)
    agreeing = round(plain["agreement"] * len(labels))
    record: dict[str, Any] = {"max_drop": opts.max_drop, "max_drop_resolved": limit,
                              "min_agreement": opts.min_agreement, "split": split, "images": len(labels),
                              "unique_images": fid.unique, "resolution": 100.0 / len(labels),
                              "agreement_ci": wilson_interval(agreeing, len(labels)), "float_accuracy": float_acc,
                              **plain, "fallback_layers": [], "method": "nncf"}
    if plain["fits"]:
        return quantized, BudgetRecord.from_json(record), None
    rep = of(req.reporter)
    rep.note(f"{req.out_path.name}: drop {plain['drop']:.2f} pt / agreement {100 * plain['agreement']:.1f} % on "
             f"{len(labels)} {split} images misses the budget; trying NNCF accuracy control and edge-tl's "
             "float-fallback search")
    candidates: dict[str, tuple[Any, dict[str, Any]]] = {}
    for name, repair in REPAIRS.items():
        try:
            with _quiet():
                model = repair(nncf, float_model, quantized, req, images, kwargs, pixels, labels)
        except Exception as exc:  # noqa: BLE001 - NNCF and OpenVINO raise many unrelated types
            record.setdefault("errors", {})[name] = _first_line(exc)
            continue
        from edge_tl.export.sensitivity_openvino import latency_ms

        layers = _float_ops(model, quantized)
        candidates[name] = (model, {**measure(model), "fallback_layers": layers,
                                    "latency_ms": latency_ms(model, card)})
    if not candidates:
        return (quantized, BudgetRecord.from_json(record),
                f"both budget repairs failed ({record['errors']}); kept the plain int8 IR")
    best = min(candidates, key=lambda k: _rank(candidates[k][1]))
    model, chosen = candidates[best]
    record.update(drop_before=plain["drop"], agreement_before=plain["agreement"], **chosen, method=best,
                  candidates={k: v for k, (_m, v) in candidates.items()})
    verdict = "fits" if chosen["fits"] else "still over budget"
    both = "; ".join(f"{k}: drop {v['drop']:.2f} pt, agreement {100 * v['agreement']:.1f} %, "
                     f"{v['latency_ms']:.2f} ms, {len(v['fallback_layers'])} layer(s) float"
                     for k, (_m, v) in candidates.items())
    return model, BudgetRecord.from_json(record), (f"accuracy budget on {len(labels)} {split} images (plain int8 drop "
                           f"{plain['drop']:.2f} pt): {both}; kept {best} ({verdict})")


def _rank(c: dict[str, Any]) -> tuple[int, float]:
    """Fits first and then the faster; otherwise the smaller drop."""
    return (0, c["latency_ms"]) if c["fits"] else (1, c["drop"])


def _accuracy_control(nncf: Any, float_model: Any, quantized: Any, req: ExportRequest, images: list[np.ndarray],
                      kwargs: dict[str, Any], pixels: np.ndarray, labels: np.ndarray) -> Any:
    """NNCF ``quantize_with_accuracy_control``: reverts the most harmful layers until the drop fits."""
    spec = req.card.input

    def validate(compiled: Any, items: Any) -> float:  # NNCF passes the raw items: (pixels, label) pairs
        hits = [int(compiled(normalize(x, spec, "NCHW"))[0].argmax(1)[0] == y) for x, y in items]
        return float(np.mean(hits)) if hits else 0.0

    val = nncf.Dataset([(pixels[i:i + 1], int(labels[i])) for i in range(len(pixels))],
                       lambda item: normalize(item[0], spec, "NCHW"))
    return nncf.quantize_with_accuracy_control(float_model, _dataset(nncf, images, spec), val, validate,
                                               max_drop=req.options.max_drop / 100.0,
                                               drop_type=nncf.DropType.ABSOLUTE, **kwargs)


def _fallback_search(nncf: Any, float_model: Any, quantized: Any, req: ExportRequest, images: list[np.ndarray],
                     kwargs: dict[str, Any], pixels: np.ndarray, labels: np.ndarray) -> Any:
    """edge-tl's search (:func:`edge_tl.export.sensitivity.budget_search`) on the IR: layers kept float in
    order of the error each adds alone, each variant derived from the one NNCF calibration."""
    from edge_tl.export.budget import MAX_TRIES, RANK_IMAGES
    from edge_tl.export.sensitivity import budget_search, layer_sensitivity
    from edge_tl.export.sensitivity_openvino import OpenVinoQuantBackend
    from edge_tl.parity import drop_limit

    opts = req.options
    backend = OpenVinoQuantBackend(float_model, quantized, variant_card(req), threads=default_threads(opts.threads),
                                   base_float=logits_layer(float_model) if opts.output == "float" else ())
    ranking = layer_sensitivity(backend, pixels[:RANK_IMAGES], labels[:RANK_IMAGES]).layers
    result = budget_search(backend, pixels, labels, drop_limit(opts.max_drop, len(labels)), ranking=ranking,
                           max_float=MAX_TRIES, timed=False, min_agreement=opts.min_agreement)
    return backend.build(result.chosen.float_layers).model


REPAIRS = {"nncf_accuracy_control": _accuracy_control, "edge_tl_fallback": _fallback_search}


def _quantized_inputs(model: Any) -> set[str]:
    """Names of the ops fed by a quantiser (the layers that run in int8)."""
    from edge_tl.export.sensitivity_openvino import quantised_inputs

    return set(quantised_inputs(model))


def _float_ops(controlled: Any, quantized: Any) -> list[str]:
    """Layers quantised in the plain int8 model that accuracy control left in float."""
    return sorted(_quantized_inputs(quantized) - _quantized_inputs(controlled))

