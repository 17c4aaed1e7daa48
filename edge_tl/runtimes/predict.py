"""Top-k prediction for image files through any :class:`~edge_tl.runtimes.base.Runtime`.

A model file comes from :func:`edge_tl.runtimes.load`, a bare backbone (ImageNet head) from
:func:`edge_tl.runtimes.torch_rt.from_backbone`. The CLI (``edge-tl predict``) only formats :class:`PredictResult`.
Images are decoded and checked before any model runs, so a bad file fails fast and names itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from edge_tl.records import ParityResult
    from edge_tl.runtimes.base import Runtime

SATURATION_LIMIT = 0.001  # warn when more than this fraction of int8 outputs sit at the rails


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


def saturation_warning(parity: ParityResult | None) -> str | None:
    """A warning when a card's parity shows saturated int8 outputs (probabilities are then unreliable)."""
    frac = 0.0 if parity is None else parity.saturated
    if frac > SATURATION_LIMIT:
        return (f"{frac:.1%} of this model's int8 outputs are saturated: top-1 may hold but the probabilities "
                "are distorted (re-export with a wider output range or keep the output in float)")
    return None


def parity_warnings(parity: ParityResult | None) -> list[str]:
    """Warnings from a card's stored parity result: saturated int8 outputs, a failed check."""
    out = [w] if (w := saturation_warning(parity)) else []
    if parity is not None and not parity.passed:
        out.append("this artefact failed its parity check at export: " + "; ".join(parity.failures))
    return out


def top_k(probs: np.ndarray, classes: Sequence[str], k: int) -> tuple[Prediction, ...]:
    """The ``k`` most probable classes (ties broken by index), at most the number of classes."""
    k = min(k, probs.shape[-1])
    order = np.argsort(-probs, kind="stable")[:k]
    return tuple(Prediction(r + 1, int(i), classes[int(i)], float(probs[i])) for r, i in enumerate(order))


def predict_files(paths: Sequence[str | Path], runtime: Runtime, top: int = 5, batch_size: int = 16,
                  warnings: Sequence[str] = (), on_batch: Callable[[int], None] | None = None) -> PredictResult:
    """Decode every file (bad ones raise ``BadImageError`` naming the file), then predict in batches."""
    from edge_tl.data.preprocess import load_batch

    card = runtime.card
    pixels = [load_batch([p], card.input)[0] for p in paths]  # all decoded before the model runs
    images: list[ImagePrediction] = []
    for start in range(0, len(pixels), batch_size):
        batch = np.stack(pixels[start:start + batch_size])
        probs = np.asarray(runtime.predict_proba(batch), dtype=np.float32)
        for j, row in enumerate(probs):
            images.append(ImagePrediction(str(paths[start + j]), top_k(row, card.classes, top)))
        if on_batch:
            on_batch(len(batch))
    return PredictResult(str(runtime.path), runtime.name, card.weights, top, tuple(images), tuple(warnings))
