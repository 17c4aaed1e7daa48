"""What makes feature visualisations readable (Olah et al. 2017, "Feature Visualization"; Lucid / lucent):
image parametrisations and transformation robustness, for :mod:`edge_tl.attacks.visualize`.

* ``fourier``: the image is the inverse real FFT of a spectrum whose coefficients are scaled by ``1 / frequency``,
  so an optimiser step moves low frequencies as easily as high ones (plain pixels favour high-frequency noise);
  its three channels live in a decorrelated colour space (the square root of ImageNet's colour covariance) and a
  sigmoid maps them into [0, 1].
* ``pixel``: one free logit per pixel and channel through a sigmoid (the plain gradient-ascent lesson).

:class:`RobustTransform` pads the image, then shifts, scales and rotates it by a small random amount at every
step, so only patterns that survive being moved around (what a different network may also see) keep growing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_tl.errors import ConfigError

# Square root of the colour covariance of ImageNet (Lucid's ``color_correlation_svd_sqrt``), columns scaled so the
# largest has unit norm: a unit step in the decorrelated space is at most a unit step in RGB.
_COLOR_SVD_SQRT = np.asarray([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float32)
COLOR_CORRELATION = _COLOR_SVD_SQRT / np.max(np.linalg.norm(_COLOR_SVD_SQRT, axis=0))


def decorrelate_color(t: Any) -> Any:
    """Map an NCHW tensor from the decorrelated colour space to (unbounded) RGB."""
    import torch

    m = torch.from_numpy(COLOR_CORRELATION).to(t.dtype)
    return torch.einsum("nchw,dc->ndhw", t, m)


def rfft2d_freqs(h: int, w: int) -> np.ndarray:
    """Spatial frequency magnitude of each coefficient of a ``h x w`` real 2-D FFT, shape ``(h, w // 2 + 1)``."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    return np.sqrt(fx * fx + fy * fy)


class FourierImage:
    """A ``size x size`` RGB image parametrised by its scaled Fourier spectrum in decorrelated colour.

    ``params`` holds the one trainable tensor (real and imaginary parts); calling the object returns the NCHW
    image in (0, 1). ``decay_power`` sets how strongly low frequencies are favoured (1 = ``1 / f``, as Lucid).
    """

    def __init__(self, size: int, generator: Any, decay_power: float = 1.0, sd: float = 0.01,
                 decorrelate: bool = True) -> None:
        import torch

        freqs = rfft2d_freqs(size, size)
        self.size, self.decorrelate = size, decorrelate
        scale = 1.0 / np.maximum(freqs, 1.0 / size) ** decay_power
        self._scale = torch.from_numpy(scale.astype(np.float32))[None, None, :, :, None]
        self.spectrum = (sd * torch.randn(1, 3, *freqs.shape, 2, generator=generator)).requires_grad_(True)
        self.params = [self.spectrum]

    def __call__(self) -> Any:
        import torch

        spec = torch.view_as_complex((self._scale * self.spectrum).contiguous())
        x = torch.fft.irfftn(spec, s=(self.size, self.size), norm="ortho") / 4.0
        if self.decorrelate:
            x = decorrelate_color(x)
        return torch.sigmoid(x)


class PixelImage:
    """A ``size x size`` RGB image with one free parameter per pixel and channel, through a sigmoid."""

    def __init__(self, size: int, generator: Any, sd: float = 0.2) -> None:
        import torch

        self.pixels = (sd * torch.randn(1, 3, size, size, generator=generator)).requires_grad_(True)
        self.params = [self.pixels]

    def __call__(self) -> Any:
        import torch

        return torch.sigmoid(self.pixels)


Parametrisation = Callable[[int, Any], Any]
PARAMETRISATIONS: dict[str, Parametrisation] = {"fourier": FourierImage, "pixel": PixelImage}
"""Name -> ``factory(size, torch.Generator)``: an object with ``params`` (tensors to optimise) whose call gives the
NCHW image in (0, 1)."""


def make_parametrisation(name: str, size: int, generator: Any) -> Any:
    """The registered parametrisation ``name``; unknown names raise with the valid choices."""
    if name not in PARAMETRISATIONS:
        raise ConfigError(f"unknown image parametrisation '{name}'", f"choose one of {', '.join(PARAMETRISATIONS)}")
    return PARAMETRISATIONS[name](size, generator)


@dataclass(frozen=True)
class RobustTransform:
    """A random small change of view applied at every step: pad by ``pad`` pixels of grey, roll (circular
    shift) by up to ``jitter`` whole pixels, zoom by a factor in ``1 +- scale`` and rotate by up to ``degrees``.
    All zero = identity. Sizes are in pixels: the defaults suit 224 px images."""

    pad: int = 0
    jitter: int = 0
    scale: float = 0.0
    degrees: float = 0.0

    def __post_init__(self) -> None:
        if self.pad < 0 or self.jitter < 0 or not 0 <= self.scale < 0.5 or not 0 <= self.degrees <= 90:
            raise ConfigError("transforms need pad, jitter >= 0, scale in [0, 0.5) and degrees in [0, 90]",
                              "e.g. --jitter 8 --scale 0.1 --rotate 10")

    def __call__(self, img: Any, generator: Any) -> Any:
        """``img`` (NCHW, [0, 1]) padded, rolled by a whole number of pixels and zoomed / rotated, one random draw
        per image of the batch."""
        import torch
        import torch.nn.functional as F

        if self.pad:
            img = F.pad(img, (self.pad,) * 4, mode="constant", value=0.5)
        if self.jitter:
            views = []
            for view in img.split(1):
                dy, dx = (int(v) for v in torch.randint(-self.jitter, self.jitter + 1, (2,), generator=generator))
                views.append(torch.roll(view, shifts=(dy, dx), dims=(2, 3)))
            img = torch.cat(views)
        if not (self.scale or self.degrees):
            return img
        u = torch.rand(len(img), 2, generator=generator) * 2.0 - 1.0  # scale, angle in [-1, 1]
        s = 1.0 + self.scale * u[:, 0]
        a = u[:, 1] * math.radians(self.degrees)
        # affine_grid maps output to input coordinates: zooming in by s samples a region 1/s as large
        cos, sin, zero = torch.cos(a) / s, torch.sin(a) / s, torch.zeros_like(s)
        theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
        grid = F.affine_grid(theta.to(img.dtype), list(img.shape), align_corners=False)
        return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=False)
