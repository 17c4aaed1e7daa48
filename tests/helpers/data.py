"""Generated image files for data tests: ImageFolder trees (:func:`image_folder`) and one file per hygiene case
(:func:`messy_files`, written with :func:`write_files`)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def jpeg(path: Path, seed: int = 0, size: tuple[int, int] = (24, 20)) -> Path:
    """A noise JPEG at ``path`` (parents created); equal seeds give identical bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, "JPEG")
    return path


def image_folder(root: Path, counts: dict[str, int], seed: int = 0) -> Path:
    """One distinct JPEG per file (seeds start after ``seed``: equal seeds give identical files)."""
    for cls, n in counts.items():
        for i in range(n):
            seed += 1
            jpeg(root / cls / f"{i}.jpg", seed)
    return root


def noise(w: int = 40, h: int = 32, seed: int = 0, mode: str = "RGB") -> Image.Image:
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return Image.fromarray(arr, "RGB").convert(mode)


def encode(im: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def png_raw(w: int, h: int, depth: int, colour: int, rows: bytes) -> bytes:
    """A PNG from raw scanlines, for what Pillow cannot write (48-bit RGB, a header claiming a huge size)."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def messy_files() -> dict[str, bytes]:
    """name -> bytes: one file per hygiene case (names say what they are)."""
    good = encode(noise(seed=1), "JPEG", quality=90)
    p_transparent = noise(seed=9).convert("P")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotated 90 degrees
    return {
        "good.jpg": good,
        "good2.jpg": encode(noise(seed=2), "JPEG"),
        "empty.jpg": b"",
        "truncated.jpg": good[: len(good) // 2],
        "truncated_tail.jpg": good[: len(good) * 9 // 10],
        "text.jpg": b"this is not an image\n",
        "page.png": b"<!DOCTYPE html><html><body>404</body></html>",
        "png_named.jpg": encode(noise(seed=3), "PNG"),
        "gif_named.jpg": encode(noise(seed=4).convert("P"), "GIF"),
        "webp_named.jpg": encode(noise(seed=5), "WEBP"),
        "cmyk.jpg": encode(noise(seed=6, mode="CMYK"), "JPEG"),
        "gray.jpg": encode(noise(seed=8, mode="L"), "JPEG"),
        "rgba.png": encode(noise(seed=10, mode="RGBA"), "PNG"),
        "palette.png": encode(noise(seed=11).convert("P"), "PNG"),
        "palette_transparent.png": encode(p_transparent, "PNG", transparency=0),
        "gray16.png": encode(Image.fromarray(np.full((8, 8), 40000, np.uint16)), "PNG"),
        "rgb16.png": png_raw(8, 8, 16, 2, b"".join(b"\x00" + bytes(range(48)) for _ in range(8))),
        "rotated.jpg": encode(noise(40, 20, seed=7), "JPEG", exif=exif.tobytes()),
        "bomb.png": png_raw(30000, 30000, 8, 0, b"\x00" * 64),  # a decompression bomb: the header claims 9e8 px
        "copy_of_good.jpg": good,
    }


def write_files(folder: Path, files: dict[str, bytes]) -> list[Path]:
    """Write name -> bytes into ``folder``; the paths, in the dict's order."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return [folder / name for name in files]
