"""Runtimes: one :class:`Runtime` protocol over PyTorch checkpoints, ONNX Runtime and LiteRT artefacts.

``load(path, threads=)`` picks the backend by suffix. The helpers here are shared by every backend so that the
pixel boundary (shape checks, batching, the saturation warning) behaves the same everywhere. This package never
imports ``export`` or ``train``; backend modules import their heavy library themselves.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from edge_tl._cpu import usable_cores
from edge_tl.card import InputSpec, ModelCard
from edge_tl.errors import ArtifactError, DataError
from edge_tl.runtimes.base import Runtime, load, register_runtime, runtime_names, softmax

__all__ = [
    "BATCH",
    "Runtime",
    "SaturationWarning",
    "check_pixels",
    "default_threads",
    "load",
    "register_runtime",
    "run_batched",
    "runtime_names",
    "softmax",
    "warn_if_saturated",
]

BATCH = 64  # images per backend call: bounds memory for any N


class SaturationWarning(UserWarning):
    """An artefact whose stored parity result shows saturated int8 outputs (its probabilities are clipped)."""


def default_threads(threads: int | None) -> int:
    """``threads`` or, when None, the cores this process may run on."""
    if threads is not None:
        if threads < 1:
            raise DataError(f"threads must be >= 1, got {threads}")
        return int(threads)
    return usable_cores()


def check_pixels(images: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Validate a pixel batch against ``spec``: ``(N, size, size, 3)`` uint8, or float in [0, 1].

    A single image ``(H, W, 3)`` is promoted to a batch of one. Anything else raises a one-line
    :class:`ArtifactError` (wrong size) or :class:`DataError` (wrong shape/dtype/range).
    """
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3:
        raise DataError(f"expected RGB images shaped (N, H, W, 3), got {tuple(x.shape)}",
                        "decode images with edge_tl.data.preprocess.load_batch(paths, runtime.card.input)")
    if x.shape[1:3] != (spec.size, spec.size):
        raise ArtifactError(
            f"images are {x.shape[1]}x{x.shape[2]} but the model expects {spec.size}x{spec.size}",
            "decode images with edge_tl.data.preprocess.load_batch(paths, runtime.card.input)")
    if x.dtype == np.uint8:
        return x
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"pixels must be uint8 0..255 or float in [0, 1], got {x.dtype}")
    if x.size and (float(np.nanmin(x)) < -1e-3 or float(np.nanmax(x)) > 1.0 + 1e-3 or np.isnan(x).any()):
        raise DataError("float pixels must lie in [0, 1]", "divide uint8 pixels by 255, or pass the uint8 array")
    return x.astype(np.float32, copy=False)


def run_batched(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, batch: int = BATCH) -> np.ndarray:
    """Apply ``fn`` to ``x`` in slices of ``batch`` along axis 0 and concatenate (keeps memory bounded)."""
    if len(x) <= batch:
        return fn(x)
    return np.concatenate([fn(x[i:i + batch]) for i in range(0, len(x), batch)], axis=0)


def warn_if_saturated(card: ModelCard, path: object, limit: float = 0.001) -> None:
    """Warn (``SaturationWarning``) when the card's parity result records saturated outputs above ``limit``."""
    sat = None if card.parity is None else card.parity.saturated
    if sat is not None and sat > limit:
        warnings.warn(f"{path}: {100 * sat:.1f} % of this artefact's int8 outputs sat at the int8 limits when it "
                      "was verified; its probabilities are clipped (re-export with edge-tl export --force)",
                      SaturationWarning, stacklevel=4)
