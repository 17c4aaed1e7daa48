"""The one implementation of decoding and preprocessing, shared by training, calibration, runtimes, bench
and attacks, so a pixel means the same thing everywhere.

Resize and centre crop reproduce torchvision's ``Resize(resize)`` + ``CenterCrop(size)`` on PIL images exactly
(same output-size rounding, same crop offsets, Pillow's antialiased filters). Imports numpy and Pillow only.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_tl.errors import DataError

if TYPE_CHECKING:
    from PIL import Image

    from edge_tl.card import InputSpec


class BadImageError(DataError):
    """A file that is not a decodable image (zero bytes, truncated, not an image, decompression bomb)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint or "replace or remove the file (edge-tl data check lists every bad file)")


_FILTERS = {"bilinear": 2, "bicubic": 3, "nearest": 0}  # PIL.Image.Resampling values


def open_image(path: str | Path, min_side: int | None = None) -> Image.Image:
    """Decode ``path`` to an RGB PIL image, EXIF orientation applied.

    With ``min_side``, JPEG draft mode lets libjpeg decode at a reduced scale whose shorter side is still at
    least ``2 * min_side`` (so the later antialiased resize still does the real downscaling): several times
    faster on large photos, within a few grey levels of a full decode.
    Raises :class:`BadImageError` for anything that is not a complete, sane image.
    """
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            if min_side and im.format == "JPEG":
                im.draft("RGB", (2 * min_side, 2 * min_side))
            im.load()
            return _to_rgb(ImageOps.exif_transpose(im))
    except Image.DecompressionBombError as exc:
        raise BadImageError(f"{path}: refused, larger than Pillow's decompression-bomb limit ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, Image.UnidentifiedImageError) as exc:
        raise BadImageError(f"{path}: not a readable image ({exc})") from None


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if arr.max() > 255 else 255.0
        from PIL import Image

        im = Image.fromarray(np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
        from PIL import Image

        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return im.convert("RGB")


def resized_size(width: int, height: int, resize: int) -> tuple[int, int]:
    """Output (width, height) of torchvision ``Resize(resize)``: shorter side to ``resize``, aspect kept."""
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = resize, int(resize * long / short)
    return (new_short, new_long) if width <= height else (new_long, new_short)


def center_crop_box(width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """PIL crop box of torchvision ``CenterCrop(size)`` (same rounding of the offsets)."""
    top = round((height - size) / 2.0)
    left = round((width - size) / 2.0)
    return left, top, left + size, top + size


def resize_crop(im: Image.Image, spec: InputSpec) -> np.ndarray:
    """Resize the shorter side to ``spec.resize``, centre-crop ``spec.size``: uint8 ``(size, size, 3)``."""
    w, h = resized_size(im.width, im.height, spec.resize)
    if (w, h) != im.size:
        im = im.resize((w, h), _FILTERS[spec.interpolation])
    if w < spec.size or h < spec.size:
        raise BadImageError(f"image {im.size} is smaller than the crop {spec.size} after resizing")
    return np.asarray(im.crop(center_crop_box(w, h, spec.size)), dtype=np.uint8)


def load_pixels(path: str | Path, spec: InputSpec, draft: bool = True) -> np.ndarray:
    """Decode + resize + crop one file: uint8 ``(size, size, 3)`` RGB."""
    return resize_crop(open_image(path, spec.resize if draft else None), spec)


def load_batch(paths: list[str | Path], spec: InputSpec, draft: bool = True) -> np.ndarray:
    """Decode several files: uint8 ``(N, size, size, 3)``."""
    return np.stack([load_pixels(p, spec, draft) for p in paths]) if paths else np.zeros(
        (0, spec.size, spec.size, 3), np.uint8)


def to_unit(pixels: np.ndarray) -> np.ndarray:
    """uint8 0..255 or float [0, 1] pixels -> float32 [0, 1]."""
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / np.float32(255.0)
    return pixels.astype(np.float32, copy=False)


def normalize_levels(levels: np.ndarray, spec: InputSpec, layout: str, out: np.ndarray | None = None) -> np.ndarray:
    """Whole grey levels held as float32 ``(N, 3, H, W)`` (``layout="NCHW"``) or ``(N, H, W, 3)`` -> the normalised
    tensor, bit for bit what :func:`normalize` gives the same pixels as uint8, without the uint8 round trip or a
    change of layout (written to ``out`` when given, which may be ``levels`` itself)."""
    shape = (1, 3, 1, 1) if layout == "NCHW" else (1, 1, 1, 3)
    out = np.divide(levels, np.float32(255.0), out=out, dtype=np.float32)
    out -= np.asarray(spec.mean, np.float32).reshape(shape)
    out /= np.asarray(spec.std, np.float32).reshape(shape)
    return out


def normalize(pixels: np.ndarray, spec: InputSpec, layout: str = "NCHW") -> np.ndarray:
    """``(N, H, W, 3)`` pixels (uint8, or float in [0, 1]) -> normalised float32 in ``layout``.

    uint8 pixels are laid out as bytes first, then converted in place (for NCHW 3x faster than converting and
    then transposing floats; the same values)."""
    if pixels.ndim != 4 or pixels.shape[-1] != 3:
        raise DataError(f"expected images shaped (N, H, W, 3), got {tuple(pixels.shape)}")
    if pixels.dtype == np.uint8:
        levels = np.ascontiguousarray(pixels.transpose(0, 3, 1, 2) if layout == "NCHW" else pixels).astype(np.float32)
        return normalize_levels(levels, spec, layout, out=levels)
    x = (to_unit(pixels) - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    if layout == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x, dtype=np.float32)
