"""``sample``: the embedded default dataset, a *synthetic* one that edge-tl generates itself (numpy + Pillow).

Six shape classes (circle, crescent, cross, square, star, triangle). Every image draws its shape with a random
colour, fill (solid, stripes, two-tone gradient or outline), position, scale and rotation over a random
background (flat, gradient, smooth blotches or a checker texture) with distractor strokes, sensor noise,
sometimes blur, saved as a JPEG of random quality. The class is the *shape*, so colour and texture are no
shortcut: a random-init network does not solve it in a couple of epochs, a pretrained backbone with a linear
head does.

Generation is deterministic: image ``i`` of class ``c`` uses ``numpy.random.default_rng([seed, c, i])``, so the
same arguments give byte-identical files (with the same Pillow). The default copy is written once to
``<cache>/sample-v1`` (see :func:`edge_tl.data.download.cache_dir`) and reused.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_tl._io import atomic_write_bytes, atomic_write_text
from edge_tl.errors import DataError

CLASSES: tuple[str, ...] = ("circle", "crescent", "cross", "square", "star", "triangle")
DEFAULT_PER_CLASS = 100
DEFAULT_SIZE = 128
DEFAULT_SEED = 0
VERSION = 1
MARKER = ".edge-tl-sample.json"
_SS = 2  # supersampling factor for anti-aliased shape masks

if TYPE_CHECKING:
    from PIL import Image as PILImage
    from PIL import ImageDraw

Polygon = list[tuple[float, float]]


def default_sample_dir() -> Path:
    """Where the default ``sample`` copy lives: ``<cache>/sample-v1``."""
    from edge_tl.data.download import cache_dir

    return cache_dir() / f"sample-v{VERSION}"


def generate_sample(root: Path | str, per_class: int = DEFAULT_PER_CLASS, size: int = DEFAULT_SIZE,
                    seed: int = DEFAULT_SEED) -> Path:
    """Write the synthetic dataset as ``root/<class>/<class>_NNNN.jpg`` and return ``root``.

    Reuses ``root`` when it already holds a sample with the same parameters; ``root`` may be absent or an
    empty folder. Files appear all at once (generated in a temp folder, then renamed), so a crash never leaves
    a half-written dataset. Takes well under a second per hundred 128 px images.
    """
    root = Path(root)
    if per_class < 1 or size < 16:
        raise DataError(f"sample needs per_class >= 1 and size >= 16, got {per_class} and {size}")
    params = {"version": VERSION, "per_class": per_class, "size": size, "seed": seed, "classes": list(CLASSES)}
    if _marker_matches(root, params):
        return root
    if root.exists() and not root.is_dir():
        raise DataError(f"{root} exists and is not a folder", "choose another folder for the sample data")
    if root.is_dir() and any(root.iterdir()) and not (root / MARKER).is_file():
        raise DataError(f"{root} is not empty and holds no edge-tl sample", "choose an empty folder")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        for c, name in enumerate(CLASSES):
            (tmp / name).mkdir()
            for i in range(per_class):
                rng = np.random.default_rng([seed, c, i])
                im, quality = render(name, size, rng)
                buf = io.BytesIO()  # Pillow writing to a path can drop the tail of a short write without an error
                im.save(buf, format="JPEG", quality=quality)
                atomic_write_bytes(tmp / name / f"{name}_{i:04d}.jpg", buf.getvalue())
        atomic_write_text(tmp / MARKER, json.dumps(params) + "\n")
        _install(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def _marker_matches(root: Path, params: dict) -> bool:
    try:
        return json.loads((root / MARKER).read_text()) == params
    except (OSError, ValueError):
        return False


def _install(tmp: Path, root: Path) -> None:
    """Move the finished ``tmp`` tree to ``root`` (replacing an empty folder or an older sample)."""
    if root.is_dir():
        if (root / MARKER).is_file():  # an older sample with other parameters: ours to replace
            shutil.rmtree(root)
        else:
            root.rmdir()  # empty, checked by the caller
    try:
        os.replace(tmp, root)
    except OSError:
        if not (root / MARKER).is_file():  # not another process finishing the same job first
            raise


# ---- rendering -------------------------------------------------------------------------------------------


def render(name: str, size: int, rng: np.random.Generator) -> tuple[PILImage.Image, int]:
    """One RGB PIL image of shape ``name`` and the JPEG quality to save it with."""
    from PIL import Image, ImageFilter

    bg = _background(size, rng)
    _distractors(bg, rng)
    cx, cy = rng.uniform(0.32, 0.68, size=2) * size
    radius = rng.uniform(0.24, 0.38) * size
    angle = rng.uniform(0, 2 * math.pi)
    mask = _shape_mask(name, size, cx, cy, radius, angle)
    fill = _fill(size, rng, bg.mean(axis=(0, 1)))
    if rng.random() < 0.12:  # outline only: the shape's edge, not its area
        from PIL import Image as _I

        m = _I.fromarray((mask * 255).astype(np.uint8))
        inner = np.asarray(m.filter(ImageFilter.MinFilter(2 * max(1, size // 40) + 1)), np.float32) / 255
        mask = np.clip(mask - inner, 0, 1)
    img = bg * (1 - mask[..., None]) + fill * mask[..., None]
    img += rng.normal(0, rng.uniform(0, 10), img.shape)
    im = Image.fromarray(np.clip(img + 0.5, 0, 255).astype(np.uint8), "RGB")
    if rng.random() < 0.3:
        im = im.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2) * size / 96))
    return im, int(rng.integers(70, 96))


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0, 255, 3)


def _far_colour(rng: np.random.Generator, avoid: np.ndarray, min_dist: float = 90.0) -> np.ndarray:
    for _ in range(50):
        c = _colour(rng)
        if np.linalg.norm(c - avoid) >= min_dist:
            return c
    return 255.0 - avoid


def _smooth_noise(size: int, rng: np.random.Generator, cells: int) -> np.ndarray:
    from PIL import Image

    small = rng.uniform(0, 255, (cells, cells)).astype(np.uint8)
    return np.asarray(Image.fromarray(small, "L").resize((size, size), Image.Resampling.BICUBIC),
                      np.float32) / 255.0


def _background(size: int, rng: np.random.Generator) -> np.ndarray:
    a, b = _colour(rng), _colour(rng)
    kind = rng.integers(4)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if kind == 0:  # flat
        t = np.zeros((size, size), np.float32)
    elif kind == 1:  # linear gradient in a random direction
        th = rng.uniform(0, 2 * math.pi)
        t = xx * math.cos(th) + yy * math.sin(th)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    elif kind == 2:  # smooth blotches
        t = _smooth_noise(size, rng, int(rng.integers(3, 7)))
    else:  # checker / grid texture
        period = rng.uniform(0.08, 0.25)
        t = (((xx // period) + (yy // period)) % 2).astype(np.float32) * rng.uniform(0.2, 0.6)
    return a * (1 - t[..., None]) + b * t[..., None]


def _distractors(img: np.ndarray, rng: np.random.Generator) -> None:
    """Draw a few random strokes and small blobs into ``img`` (in place)."""
    from PIL import Image, ImageDraw

    size = img.shape[0]
    n = int(rng.integers(0, 4))
    if n == 0:
        return
    layer = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(layer)
    for _ in range(n):
        x0, y0, x1, y1 = (rng.uniform(0, size, 4)).tolist()
        if rng.random() < 0.6:
            draw.line([(x0, y0), (x1, y1)], fill=255, width=int(rng.integers(1, max(2, size // 24))))
        else:
            r = rng.uniform(0.02, 0.06) * size
            draw.ellipse([x0 - r, y0 - r, x0 + r, y0 + r], fill=255)
    m = np.asarray(layer, np.float32)[..., None] / 255 * rng.uniform(0.4, 1.0)
    img *= 1 - m
    img += _colour(rng) * m


def _fill(size: int, rng: np.random.Generator, bg_mean: np.ndarray) -> np.ndarray:
    """The shape's pixels: solid, stripes or a two-tone gradient, contrasting with the background."""
    a = _far_colour(rng, bg_mean)
    kind = rng.integers(3)
    if kind == 0:
        return np.broadcast_to(a, (size, size, 3)).astype(np.float32)
    b = _far_colour(rng, bg_mean, 60.0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    th = rng.uniform(0, math.pi)
    proj = xx * math.cos(th) + yy * math.sin(th)
    if kind == 1:
        t = ((proj // rng.uniform(2, 6) / size * 48) % 2).astype(np.float32)
    else:
        t = (proj - proj.min()) / max(float(proj.max() - proj.min()), 1e-6)
    return a * (1 - t[..., None]) + b * t[..., None]


def _polygon(n: int, cx: float, cy: float, r: float, angle: float, inner: float | None = None) -> Polygon:
    pts: Polygon = []
    step = math.pi / n if inner else 2 * math.pi / n
    for k in range(2 * n if inner else n):
        rad = r if (inner is None or k % 2 == 0) else r * inner
        pts.append((cx + rad * math.cos(angle + k * step), cy + rad * math.sin(angle + k * step)))
    return pts


def _cross(cx: float, cy: float, r: float, angle: float) -> Polygon:
    w = 0.36 * r
    base = [(w, r), (w, w), (r, w), (r, -w), (w, -w), (w, -r), (-w, -r), (-w, -w), (-r, -w), (-r, w), (-w, w),
            (-w, r)]
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in base]


def _draw_circle(d: ImageDraw.ImageDraw, cx: float, cy: float, r: float, angle: float) -> None:
    d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)


def _draw_crescent(d: ImageDraw.ImageDraw, cx: float, cy: float, r: float, angle: float) -> None:
    d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    ox, oy = cx + 0.5 * r * math.cos(angle), cy + 0.5 * r * math.sin(angle)
    r2 = 0.85 * r
    d.ellipse([ox - r2, oy - r2, ox + r2, oy + r2], fill=0)


_SHAPES: dict[str, Callable[[ImageDraw.ImageDraw, float, float, float, float], None]] = {
    "circle": _draw_circle,
    "crescent": _draw_crescent,
    "cross": lambda d, cx, cy, r, a: d.polygon(_cross(cx, cy, r, a), fill=255),
    "square": lambda d, cx, cy, r, a: d.polygon(_polygon(4, cx, cy, r * 0.95, a), fill=255),
    "star": lambda d, cx, cy, r, a: d.polygon(_polygon(5, cx, cy, r * 1.05, a, inner=0.42), fill=255),
    "triangle": lambda d, cx, cy, r, a: d.polygon(_polygon(3, cx, cy, r * 1.05, a), fill=255),
}


def _shape_mask(name: str, size: int, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    """Anti-aliased float mask in [0, 1] of one shape (drawn at 2x, then downsampled)."""
    from PIL import Image, ImageDraw

    big = Image.new("L", (size * _SS, size * _SS), 0)
    _SHAPES[name](ImageDraw.Draw(big), cx * _SS, cy * _SS, r * _SS, angle)
    return np.asarray(big.resize((size, size), Image.Resampling.BOX), np.float32) / 255.0
