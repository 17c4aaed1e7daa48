"""Pixel-space helpers shared by every attack: a torch wrapper that puts normalisation inside the model, the
8-bit quantisation that decides what an adversarial image really is, and perturbation norms.

Convention: images are RGB NHWC, uint8 0..255 or float32 in [0, 1]; a budget ``eps`` (L-inf or L2) is in [0, 1]
units.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_tl.errors import ConfigError

if TYPE_CHECKING:
    import torch

Predict = Callable[[np.ndarray], np.ndarray]
"""Pixels ``(N, H, W, 3)`` (uint8 or float [0, 1]) -> float logits ``(N, C)``."""


def check_eps(eps: float, norm: str = "linf") -> float:
    """Return ``eps`` if it is in (0, 1] (L-inf) or positive (L2), else raise :class:`ConfigError`."""
    if norm == "linf" and not (0.0 < float(eps) <= 1.0):
        raise ConfigError(f"eps {eps} is outside (0, 1]", "give L-inf budgets in pixel units, e.g. --eps 2/255,8/255")
    if not float(eps) > 0.0:
        raise ConfigError(f"eps {eps} must be positive", "give L2 budgets in [0, 1] pixel units, e.g. --eps 0.5,1")
    return float(eps)


def eps_levels(eps: float) -> int:
    """The largest whole number of 8-bit grey levels within ``eps`` (``8/255`` -> 8, ``0.01`` -> 2)."""
    return int(np.floor(eps * 255.0 + 1e-6))


CHUNK = 32
"""Images per slice in the per-pixel helpers below: their float32 temporaries stay a few tens of MB whatever
the number of images."""


def quantize_adversarial(x: np.ndarray, adv: np.ndarray, eps: float | None, norm: str = "linf") -> np.ndarray:
    """The 8-bit image a uint8 pipeline would judge: ``adv`` projected into the ``norm`` ball of radius ``eps``
    around the uint8 image ``x``, rounded to grey levels, clipped to [0, 255].

    L-inf: the per-pixel change is at most ``floor(eps * 255)`` levels. L2: a change whose rounded norm exceeds
    ``eps`` is scaled onto the sphere and rounded towards zero. Either way the measured norm never exceeds
    ``eps``. ``eps=None`` only rounds and clips.
    """
    if x.dtype != np.uint8:
        raise TypeError("quantize_adversarial expects the clean images as uint8")
    if len(x) == 0:
        return x.copy()
    out = np.empty(x.shape, np.uint8)
    for i in range(0, len(x), CHUNK):
        out[i:i + CHUNK] = _quantize(x[i:i + CHUNK], adv[i:i + CHUNK], eps, norm)
    return out


def _quantize(x: np.ndarray, adv: np.ndarray, eps: float | None, norm: str) -> np.ndarray:
    xf = x.astype(np.float32)
    raw = adv.astype(np.float32) * 255.0 if adv.dtype != np.uint8 else adv.astype(np.float32)
    raw -= xf
    delta = np.rint(raw)
    if eps is not None and norm == "linf":
        k = eps_levels(eps)
        np.clip(delta, -k, k, out=delta)
    elif eps is not None:
        radius = float(eps) * 255.0
        flat = np.clip(xf + delta, 0, 255) - xf
        over = np.sqrt((flat.reshape(len(x), -1) ** 2).sum(axis=1)) > radius
        if over.any():
            r = raw[over]
            scale = radius / np.maximum(np.sqrt((r.reshape(len(r), -1) ** 2).sum(axis=1)), 1e-12)
            delta[over] = np.trunc(r * scale.reshape(-1, *([1] * (r.ndim - 1))))
    return np.clip(x.astype(np.int16) + delta.astype(np.int16), 0, 255).astype(np.uint8)


def perturbation_norms(x: np.ndarray, adv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image L-inf and L2 of ``adv - x`` in [0, 1] units (both uint8 or both float)."""
    scale = 255.0 if x.dtype == np.uint8 else 1.0
    if len(x) == 0:
        return np.zeros(0), np.zeros(0)
    if x[0].size == 0:
        return np.zeros(len(x)), np.zeros(len(x))
    linf, l2 = np.empty(len(x)), np.empty(len(x))
    for i in range(0, len(x), CHUNK):
        d = (adv[i:i + CHUNK].astype(np.float32) - x[i:i + CHUNK].astype(np.float32)).reshape(len(x[i:i + CHUNK]), -1)
        linf[i:i + CHUNK] = np.abs(d).max(axis=1)
        l2[i:i + CHUNK] = np.sqrt(np.einsum("ij,ij->i", d, d, dtype=np.float64))
    return linf / scale, l2 / scale


def pixel_model(model: Any, mean: tuple[float, float, float], std: tuple[float, float, float]) -> torch.nn.Module:
    """Wrap a model that expects normalised NCHW input so it takes NCHW pixels in [0, 1] (eval mode)."""
    import torch

    class PixelModel(torch.nn.Module):
        """``(x - mean) / std`` then the wrapped model; gradients flow to the [0, 1] pixels."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model((x - self.mean) / self.std)

    return PixelModel().eval()


def pixel_runtime(module: Any, size: int, classes: Any, name: str = "surrogate") -> Any:
    """A pixel-space torch module (NCHW [0, 1] in, logits out; see :func:`pixel_model`) as a
    :class:`~edge_tl.runtimes.torch_rt.TorchRuntime`, so the engine judges it like any loaded model: its card
    says identity normalisation, since the module normalises itself."""
    from pathlib import Path

    import torch

    from edge_tl.card import InputSpec, ModelCard
    from edge_tl.runtimes.torch_rt import TorchRuntime

    spec = InputSpec(size=int(size), resize=int(size), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    card = ModelCard(classes=tuple(classes), input=spec, backbone=name, weights="in memory")
    return TorchRuntime(module, card, Path(name), torch.get_num_threads(), batch=TORCH_BATCH)


TORCH_BATCH = 4
"""At most this many images per surrogate forward pass: a 224-px MobileNetV2 holds about 15 MB of activations
per image even without gradients, and the surrogate runs next to the ONNX Runtime session."""


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` (the attacked runtimes' ``--threads``) while the surrogate crafts and
    judges, and restored afterwards; ``None`` leaves torch alone."""
    if n is None:
        yield
        return
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(old)
