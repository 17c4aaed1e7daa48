"""Top-k prediction for image files, from a bare backbone (ImageNet head) or any model file via a Runtime.

The CLI (``edge-tl predict``) only formats :class:`PredictResult`; everything else happens here.
Images are decoded and checked before any model runs, so a bad file fails fast and names itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge_tl.card import InputSpec

SATURATION_LIMIT = 0.001  # warn when more than this fraction of int8 outputs sit at the rails


class Predictor(Protocol):
    """What :func:`predict_files` needs: preprocessing, class names, and pixels -> probabilities."""

    @property
    def name(self) -> str: ...

    @property
    def runtime(self) -> str: ...

    @property
    def weights(self) -> str: ...

    @property
    def input_spec(self) -> InputSpec: ...

    @property
    def classes(self) -> Sequence[str]: ...

    def predict_proba(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 ``(N, H, W, 3)`` -> probabilities ``(N, C)``."""
        ...


@dataclass(frozen=True)
class Prediction:
    """One ranked class of one image."""

    rank: int
    index: int
    label: str
    probability: float


@dataclass(frozen=True)
class ImagePrediction:
    """The top-k classes of one image file."""

    path: str
    predictions: tuple[Prediction, ...]

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "predictions": [p.__dict__ for p in self.predictions]}


@dataclass(frozen=True)
class PredictResult:
    """Top-k predictions of every image, with what produced them and any warnings."""

    model: str
    runtime: str
    weights: str
    top: int
    images: tuple[ImagePrediction, ...]
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "runtime": self.runtime, "weights": self.weights, "top": self.top,
                "images": [i.to_json() for i in self.images], "warnings": list(self.warnings)}


@dataclass
class BackbonePredictor:
    """A registered backbone with its own pretrained head (ImageNet names for the real backbones)."""

    name: str
    model: Any  # EdgeModel
    input_spec: InputSpec
    classes: Sequence[str]
    weights: str
    runtime: str = "pytorch"

    def predict_proba(self, pixels: np.ndarray) -> np.ndarray:
        import torch

        from edge_tl.data.preprocess import normalize

        x = torch.from_numpy(normalize(pixels, self.input_spec, "NCHW"))
        with torch.inference_mode():
            return torch.softmax(self.model(x).float(), dim=-1).numpy()


@dataclass
class RuntimePredictor:
    """Any model file (``runs/NAME``, ``.pt``, ``.onnx``, ``.tflite``) through ``edge_tl.runtimes.load``."""

    rt: Any  # Runtime

    @property
    def name(self) -> str:
        return str(self.rt.path)

    @property
    def runtime(self) -> str:
        return str(self.rt.name)

    @property
    def weights(self) -> str:
        return str(self.rt.card.weights)

    @property
    def input_spec(self) -> InputSpec:
        return self.rt.card.input

    @property
    def classes(self) -> Sequence[str]:
        return self.rt.card.classes

    def predict_proba(self, pixels: np.ndarray) -> np.ndarray:
        return np.asarray(self.rt.predict_proba(pixels), dtype=np.float32)


def backbone_predictor(name: str, weights: str = "default", threads: int | None = None) -> BackbonePredictor:
    """Build ``name`` with its pretrained head (``weights`` as in ``create_model``)."""
    import torch

    from edge_tl.models import create_model, get_spec, weights_label
    from edge_tl.models.imagenet import imagenet_classes

    if threads:
        torch.set_num_threads(threads)
    spec = get_spec(name)
    model = create_model(name, weights=weights)
    classes = imagenet_classes() if model.num_classes == 1000 else [str(i) for i in range(model.num_classes)]
    return BackbonePredictor(name, model, model.input_spec or spec.input_spec(), classes,
                             weights_label(spec, model.weights_info))


def runtime_predictor(path: str | Path, threads: int | None = None) -> RuntimePredictor:
    """Load a run folder or model file with the runtime registered for its type."""
    import warnings

    from edge_tl.runtimes import SaturationWarning, load

    with warnings.catch_warnings():  # the saturation warning is reported by saturation_warning(), once
        warnings.simplefilter("ignore", SaturationWarning)
        return RuntimePredictor(load(path, threads=threads))


def saturation_warning(parity: dict[str, Any] | None) -> str | None:
    """A warning when a card's parity shows saturated int8 outputs (probabilities are then unreliable)."""
    parity = parity or {}
    frac = parity.get("saturated_fraction", parity.get("saturated", 0))  # parity.py's key, and its short form
    frac = float(frac) if isinstance(frac, (int, float)) and not isinstance(frac, bool) else 0.0
    if frac > SATURATION_LIMIT:
        return (f"{frac:.1%} of this model's int8 outputs are saturated: top-1 may hold but the probabilities "
                "are distorted (re-export with a wider output range or keep the output in float)")
    return None


def parity_warnings(parity: dict[str, Any] | None) -> list[str]:
    """Warnings from a card's stored parity result: saturated int8 outputs, a failed check."""
    out = [w] if (w := saturation_warning(parity)) else []
    if parity and parity.get("passed") is False:
        failures = parity.get("failures") or ["see the export table"]
        out.append("this artefact failed its parity check at export: " + "; ".join(map(str, failures)))
    return out


def top_k(probs: np.ndarray, classes: Sequence[str], k: int) -> tuple[Prediction, ...]:
    """The ``k`` most probable classes (ties broken by index), at most the number of classes."""
    k = min(k, probs.shape[-1])
    order = np.argsort(-probs, kind="stable")[:k]
    return tuple(Prediction(r + 1, int(i), classes[int(i)], float(probs[i])) for r, i in enumerate(order))


def predict_files(paths: Sequence[str | Path], predictor: Predictor, top: int = 5, batch_size: int = 16,
                  warnings: Sequence[str] = (), on_batch: Callable[[int], None] | None = None) -> PredictResult:
    """Decode every file (bad ones raise ``BadImageError`` naming the file), then predict in batches."""
    from edge_tl.data.preprocess import load_batch

    pixels = [load_batch([p], predictor.input_spec)[0] for p in paths]  # all decoded before the model runs
    images: list[ImagePrediction] = []
    for start in range(0, len(pixels), batch_size):
        batch = np.stack(pixels[start:start + batch_size])
        probs = predictor.predict_proba(batch)
        for j, row in enumerate(probs):
            images.append(ImagePrediction(str(paths[start + j]), top_k(row, predictor.classes, top)))
        if on_batch:
            on_batch(len(batch))
    return PredictResult(predictor.name, predictor.runtime, predictor.weights, top, tuple(images), tuple(warnings))
