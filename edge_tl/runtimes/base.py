"""The one ``Runtime`` protocol for PyTorch checkpoints, ONNX Runtime and LiteRT artefacts.

Every runtime takes pixels (``uint8`` ``(N, H, W, 3)`` RGB, or float32 in [0, 1] of the same shape) and returns
float32 logits ``(N, num_classes)``. Normalisation, layout (NCHW/NHWC) and int8 (de)quantisation happen inside
the runtime, once, from its :class:`~edge_tl.card.ModelCard`. Runtimes never import ``export`` or ``train``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from edge_tl.card import ModelCard
from edge_tl.errors import ArtifactError, UnknownNameError


@runtime_checkable
class Runtime(Protocol):
    """A loaded model that maps pixels to logits."""

    name: str  # "pytorch" | "onnxruntime" | "litert"
    path: Path
    card: ModelCard
    threads: int

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Pixels ``(N, H, W, 3)`` uint8 or float [0, 1] -> float32 logits ``(N, C)`` (dequantised)."""
        ...

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """Softmax probabilities from the dequantised logits."""
        ...

    def raw(self, images: np.ndarray) -> np.ndarray:
        """The output tensor exactly as the artefact produced it (int8 for int8 outputs), for saturation checks."""
        ...


RuntimeLoader = Callable[..., Runtime]
_LOADERS: dict[str, tuple[str, RuntimeLoader]] = {}


def register_runtime(suffix: str, name: str) -> Callable[[RuntimeLoader], RuntimeLoader]:
    """Register ``loader(path, threads=..., **kw)`` for files ending in ``suffix``."""

    def deco(fn: RuntimeLoader) -> RuntimeLoader:
        _LOADERS[suffix] = (name, fn)
        return fn

    return deco


_BACKENDS = ("edge_tl.runtimes.torch_rt", "edge_tl.runtimes.onnx_rt", "edge_tl.runtimes.litert_rt")


def _ensure_loaded() -> None:
    # Each backend module registers itself on import; one that is not written (yet) is skipped.
    import importlib
    import importlib.util

    for mod in _BACKENDS:
        if importlib.util.find_spec(mod) is not None:
            importlib.import_module(mod)


def runtime_names() -> dict[str, str]:
    """Suffix -> runtime name for every registered runtime."""
    _ensure_loaded()
    return {s: n for s, (n, _) in _LOADERS.items()}


def load(path: str | Path, threads: int | None = None, **kwargs: object) -> Runtime:
    """Load ``path`` with the runtime registered for its suffix (``.pt``, ``.onnx``, ``.tflite``, or a run dir)."""
    _ensure_loaded()
    p = Path(path)
    if p.is_dir():
        p = p / "model.pt"
    if not p.exists():
        raise ArtifactError(f"no such model: {path}", "give a run folder (runs/NAME) or an exported .onnx/.tflite file")
    suffix = p.suffix.lower()
    if suffix not in _LOADERS:
        raise UnknownNameError("model file type", suffix or p.name, list(_LOADERS))
    return _LOADERS[suffix][1](p, threads=threads, **kwargs)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis (float64 internally)."""
    z = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
