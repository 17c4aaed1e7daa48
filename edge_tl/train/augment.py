"""Training augmentation on top of the shared decoding: random resized crop, horizontal flip, light colour jitter.

Evaluation never augments: it uses :func:`edge_tl.data.preprocess.load_pixels` (resize + centre crop) exactly as
every runtime does. Augmentation is driven by an explicit ``numpy.random.Generator`` so a view is a pure
function of (image, seed), reproducible across workers, processes and resumes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_tl.data.preprocess import _FILTERS, open_image

if TYPE_CHECKING:
    from PIL import Image

    from edge_tl.card import InputSpec


@dataclass(frozen=True)
class AugmentConfig:
    """Random resized crop (``scale``, ``ratio``), flip probability and colour-jitter strengths."""

    scale: tuple[float, float] = (0.35, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2

    def key(self) -> str:
        """A stable string identifying these settings (part of the feature-cache key)."""
        return ",".join(f"{k}={v}" for k, v in sorted(asdict(self).items()))


DEFAULT_AUG = AugmentConfig()


def crop_box(width: int, height: int, cfg: AugmentConfig, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A random crop box as torchvision's ``RandomResizedCrop.get_params`` draws it (centre crop fallback)."""
    area = width * height
    log_ratio = (math.log(cfg.ratio[0]), math.log(cfg.ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(cfg.scale[0], cfg.scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return left, top, left + w, top + h
    in_ratio = width / height
    if in_ratio < cfg.ratio[0]:
        w, h = width, round(width / cfg.ratio[0])
    elif in_ratio > cfg.ratio[1]:
        w, h = round(height * cfg.ratio[1]), height
    else:
        w, h = width, height
    top, left = (height - h) // 2, (width - w) // 2
    return left, top, left + w, top + h


def jitter(pixels: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Light brightness / contrast / saturation jitter of uint8 ``(H, W, 3)`` pixels."""
    x = pixels.astype(np.float32)
    b = 1.0 + rng.uniform(-cfg.brightness, cfg.brightness)
    c = 1.0 + rng.uniform(-cfg.contrast, cfg.contrast)
    s = 1.0 + rng.uniform(-cfg.saturation, cfg.saturation)
    x = x * b
    grey = x @ np.asarray([0.299, 0.587, 0.114], np.float32)
    x = (x - grey.mean()) * c + grey.mean()
    grey = (x @ np.asarray([0.299, 0.587, 0.114], np.float32))[..., None]
    x = grey + (x - grey) * s
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


def augment_image(im: Image.Image, spec: InputSpec, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """One augmented ``(size, size, 3)`` uint8 view of a decoded RGB image."""
    box = crop_box(im.width, im.height, cfg, rng)
    out = im.resize((spec.size, spec.size), _FILTERS[spec.interpolation], box=box)
    pixels = np.asarray(out, dtype=np.uint8)
    if rng.uniform() < cfg.flip:
        pixels = pixels[:, ::-1]
    return jitter(np.ascontiguousarray(pixels), cfg, rng)


def augmented_pixels(path: str | Path, spec: InputSpec, rng: np.random.Generator,
                     cfg: AugmentConfig = DEFAULT_AUG) -> np.ndarray:
    """Decode ``path`` (JPEG draft mode) and return one augmented view."""
    return augment_image(open_image(path, spec.resize), spec, cfg, rng)


def view_rng(image_sha: str, view: int, seed: int = 0) -> np.random.Generator:
    """The generator of augmented view ``view`` of an image: a pure function of its content hash."""
    return np.random.default_rng([int(image_sha[:15], 16), int(view), int(seed)])
