"""Weight preparation before full-int8 quantisation, shared by all formats: BN folding, CLE, bias correction, AdaRound.

:func:`prepare_for_int8` returns a *copy* of the run's model with the chosen steps applied (the run's float
artefacts are still made from the original). The exporters then quantise a float file made from that copy, so
ONNX Runtime and ai-edge-quantizer both start from the same prepared weights. Steps (``--int8-prep``):

* ``bias``: BN folded, then empirical bias correction with weights and activations rounded as the quantisers do
  (:mod:`edge_tl.export.bias_correction`);
* ``cle``: BN folded, then cross-layer equalisation with ReLU6 replaced by ReLU (:mod:`edge_tl.export.equalize`);
* ``cle+bias``: both, in that order;
* ``adaround``: BN folded, then each layer's weight rounding learned on the calibration images
  (:mod:`edge_tl.export.adaround`); ``cle+adaround``: CLE first;
* ``qat``: BN folded, then quantisation-aware fine-tuning of the last blocks and the head through simulated int8,
  distilled from the float model on the calibration images (:mod:`edge_tl.export.qat`); kept only if it lowers the
  simulated int8 model's KL on held-out calibration images;
* ``none``: the model as trained;
* ``auto``: the per-backbone choice in :data:`AUTO_PREP`, which records what measured better than plain int8 on
  real photos (``benchmarks/bench_int8_fidelity.py``); backbones not listed get :data:`AUTO_DEFAULT` (``none``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_tl.errors import UnknownNameError
from edge_tl.export.registry import INT8_PREPS as PREP_CHOICES
from edge_tl.records import PrepRecord, QuantRecipe
from edge_tl.registry import Registry

# Per-backbone choices that measured better than plain int8 (benchmarks/bench_int8_fidelity.py). Empty until a
# preparation beats plain int8 on real photos: plain full int8 of mobilenet_v2 on catsdogs already agrees on
# 797 / 800 (ONNX) and 799 / 800 (TFLite) unseen photos, and no measurement has shown bias correction or CLE better.
AUTO_PREP: Registry[str] = Registry("backbone with an automatic int8 preparation")
AUTO_DEFAULT = "none"
BIAS_IMAGES = 64  # images for the bias statistics (one batch: the corrected pass sees them all at once)
FULL_GRID = 127  # weight_qmax of full-range int8 weights (bias_correction.WEIGHT_QMAX), the default grid
STEP_IMAGES = {"qat": 200}  # calibration images a step uses beyond BIAS_IMAGES, at most (QAT trains on them all)
PROBE_IMAGES = 4  # images used to trace the graph and check that CLE kept the float function


def resolve_prep(choice: str, backbone: str) -> str:
    """The concrete steps for ``choice`` on ``backbone`` (``auto`` -> :data:`AUTO_PREP`)."""
    if choice not in PREP_CHOICES:
        raise UnknownNameError("int8 preparation", choice, PREP_CHOICES)
    return (AUTO_PREP.find(backbone) or AUTO_DEFAULT) if choice == "auto" else choice


def _images(calibration: Callable[[int], Iterator[np.ndarray]], n: int) -> np.ndarray:
    out: list[np.ndarray] = []
    for batch in calibration(16):
        out.append(batch)
        if sum(len(b) for b in out) >= n:
            break
    return np.concatenate(out)[:n]


@dataclass(frozen=True)
class PrepInputs:
    """What a preparation step gets besides the model: the calibration images (normalised NCHW), a few of them
    to trace the graph with, the weight grid the target quantiser rounds onto (``[-weight_qmax, weight_qmax]``
    per output channel) and a progress callback."""

    images: Any
    probe: Any
    weight_qmax: int = FULL_GRID
    say: Callable[[str], None] = lambda _m: None


# One weight-preparation step: ``fn(model, inputs) -> {card key: record}`` changes ``model`` in place (BN already
# folded); ``--int8-prep cle+bias`` runs "cle" then "bias".
PrepStep = Callable[[Any, PrepInputs], dict[str, Any]]
PREP_STEPS: Registry[PrepStep] = Registry("int8 preparation step")


@PREP_STEPS.register("cle")
def _cle(model: Any, inp: PrepInputs) -> dict[str, Any]:
    from edge_tl.export.equalize import equalize

    eq = equalize(model, inp.probe, relu6="replace")
    return {"cle": {"pairs": eq.pairs, "iterations": eq.iterations, "relu6_replaced": eq.relu6_replaced,
                    "max_float_change": round(eq.max_output_change, 6)}}


@PREP_STEPS.register("bias")
def _bias(model: Any, inp: PrepInputs) -> dict[str, Any]:
    from edge_tl.export.bias_correction import correct_bias

    bc = correct_bias(model, inp.images, weight_qmax=inp.weight_qmax)
    return {"bias_correction": {"layers": bc.layers, "images": bc.images, "activations": bc.activations,
                                "mean_shift": round(bc.mean_shift, 6), "max_correction": round(bc.max_correction, 6)}}


@PREP_STEPS.register("qat")
def _qat(model: Any, inp: PrepInputs) -> dict[str, Any]:
    from edge_tl.export.qat import qat

    r = qat(model, inp.images[:STEP_IMAGES["qat"]], weight_qmax=inp.weight_qmax,
            callback=lambda e, n, loss: inp.say(f"QAT epoch {e}/{n}: simulated int8 KL from float {loss:.2e}"))
    return {"qat": {"blocks": r.blocks, "images": r.images, "held_out": r.held_out, "epochs": r.epochs,
                    "points": r.points, "kl_before": round(r.kl_before, 6), "kl_after": round(r.kl_after, 6),
                    "agreement_before": round(r.agreement_before, 6),
                    "agreement_after": round(r.agreement_after, 6), "kept": r.kept}}


@PREP_STEPS.register("adaround")
def _adaround(model: Any, inp: PrepInputs) -> dict[str, Any]:
    from edge_tl.export.adaround import adaround

    ar = adaround(model, inp.images, weight_qmax=inp.weight_qmax,
                  callback=lambda name, done, n: inp.say(f"AdaRound layer {done}/{n} ({name})"))
    return {"adaround": {"layers": ar.layers, "images": ar.images, "iters": ar.iters, "flipped": round(ar.flipped, 6),
                         "mean_mse_before": round(ar.mean_mse_before, 9), "mean_mse_after": round(ar.mean_mse_after, 9)}}


def prepare_for_int8(model: Any, spec: Any, calibration: Callable[[int], Iterator[np.ndarray]], steps: str,
                     *, bias_images: int = BIAS_IMAGES, weight_qmax: int = FULL_GRID,
                     say: Callable[[str], None] = lambda _m: None) -> tuple[Any, dict[str, Any]]:
    """A prepared copy of ``model`` and the record for ``card.quantization.prep`` (``steps`` resolved; the
    record as JSON, :class:`~edge_tl.records.PrepRecord` reads it). Steps that simulate the rounding do it on
    ``[-weight_qmax, weight_qmax]``, the target quantiser's grid; long steps report through ``say``."""
    import torch

    from edge_tl.data.preprocess import normalize
    from edge_tl.export.equalize import fold_batchnorm

    record: dict[str, Any] = {"steps": steps}
    if steps == "none":
        return model, record
    prepared = copy.deepcopy(model).eval().cpu()
    pixels = _images(calibration, max([bias_images, *(STEP_IMAGES.get(s, 0) for s in steps.split("+"))]))
    x = torch.from_numpy(normalize(pixels, spec, "NCHW"))
    inputs = PrepInputs(x, x[:PROBE_IMAGES], weight_qmax, say)
    record["bn_folded"] = fold_batchnorm(prepared, inputs.probe)
    record["weight_qmax"] = weight_qmax
    for step in steps.split("+"):
        record.update(PREP_STEPS.get(step)(prepared, inputs))
    return prepared, record


PREP_FORMATS = ("onnx", "tflite")  # formats whose int8 exporter quantises the float file it is given


class PreparedSources:
    """Float files made from the prepared model, one per format, in a private temporary folder.

    ``export_float(format, model, path) -> Path`` writes a float artefact (the driver's own float exporter).
    ``weight_qmax`` maps a format to its quantiser's weight grid (default 127: full int8; ONNX's 7-bit weights
    use 64); formats on the same grid share one prepared model, each grid is prepared once.
    Nothing is prepared until a format asks; with steps ``none`` every call returns ``None`` (use the run's float).
    """

    def __init__(self, model: Any, spec: Any, backbone: str, calibration: Callable[[int], Iterator[np.ndarray]],
                 choice: str, export_float: Callable[[str, Any, Any], Any],
                 say: Callable[[str], None] = lambda _m: None, weight_qmax: Mapping[str, int] | None = None) -> None:
        import tempfile

        self.steps, self.choice = resolve_prep(choice, backbone), choice
        self._model, self._spec, self._calibration = model, spec, calibration
        self._export_float, self._say = export_float, say
        self._grids = dict(weight_qmax or {})
        self._prepared: dict[int, tuple[Any, dict[str, Any]]] = {}  # grid -> (model, record)
        self._paths: dict[str, Any] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="edge_tl_prep_") if self.steps != "none" else None

    def _for(self, format: str) -> tuple[Any, dict[str, Any]]:
        qmax = self._grids.get(format, FULL_GRID)
        if qmax not in self._prepared:
            grid = "" if qmax == FULL_GRID else f", weights on [-{qmax}, {qmax}] for {format}"
            self._say(f"preparing weights for int8 ({self.steps}{grid})")
            self._prepared[qmax] = prepare_for_int8(self._model, self._spec, self._calibration, self.steps,
                                                    weight_qmax=qmax, say=self._say)
        return self._prepared[qmax]

    def float_path(self, format: str) -> Any:
        """The prepared float file for ``format``, or ``None`` when nothing is prepared for it."""
        if self._tmp is None or format not in PREP_FORMATS:
            return None
        if format not in self._paths:
            from pathlib import Path

            self._paths[format] = self._export_float(format, self._for(format)[0], Path(self._tmp.name) / format)
        return self._paths[format]

    def stamp(self, quantization: QuantRecipe, format: str) -> QuantRecipe:
        """``quantization`` with the preparation recorded as its ``prep`` (steps ``none`` for other formats)."""
        if format not in PREP_FORMATS:
            return quantization.with_(prep=PrepRecord())
        record = {"steps": self.steps} if self.steps == "none" else dict(self._for(format)[1])
        return quantization.with_(prep=PrepRecord.from_json({**record, "choice": self.choice}))

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
