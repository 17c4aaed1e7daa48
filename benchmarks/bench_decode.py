"""Decode-and-resize throughput (images/s): naive full decode vs JPEG draft mode, 1 and 2 threads,
plus the hygiene scan's per-file cost.

Uses ../shared/data/catsdogs (real photos, at most 384 px; skipped with a message when absent). Those photos are
already small, so draft mode barely applies at a 256 px resize; the second set re-encodes the same photos
upscaled to 2000x1500 (camera-sized JPEGs, written to a temp folder) where draft mode matters.

    .venv/bin/python benchmarks/bench_decode.py [--images 300] [--large 60]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "catsdogs"


def rate(fn: Callable[[Path], object], files: list[Path], threads: int) -> float:
    """Images per second of ``fn`` over ``files`` with a pool of ``threads``."""
    t0 = time.perf_counter()
    if threads == 1:
        for f in files:
            fn(f)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(fn, files, chunksize=4))
    return len(files) / (time.perf_counter() - t0)


def upscale(files: list[Path], out: Path) -> list[Path]:
    from PIL import Image

    res = []
    for i, f in enumerate(files):
        with Image.open(f) as im:
            p = out / f"large_{i}.jpg"
            im.convert("RGB").resize((2000, 1500), Image.Resampling.BICUBIC).save(p, quality=90)
            res.append(p)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=300, help="photos from catsdogs to decode")
    ap.add_argument("--large", type=int, default=60, help="upscaled 2000x1500 copies to decode")
    args = ap.parse_args()
    if not SHARED.is_dir():
        print(f"skipped: {SHARED} not found (this benchmark needs ../shared/data/catsdogs)")
        return 0
    from rich.console import Console
    from rich.table import Table

    from edge_tl.card import InputSpec
    from edge_tl.data.hygiene import check_file
    from edge_tl.data.preprocess import load_pixels
    from edge_tl.data.sources import load_folder

    spec = InputSpec(size=224, resize=256, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    small = InputSpec(size=64, resize=73, mean=(0.5,) * 3, std=(0.5,) * 3)  # type: ignore[arg-type]
    photos = load_folder(SHARED).files[: args.images]
    methods: dict[str, Callable[[Path], object]] = {
        "naive full decode + resize 256/crop 224": lambda f: load_pixels(f, spec, draft=False),
        "draft mode + resize 256/crop 224": lambda f: load_pixels(f, spec, draft=True),
        "naive full decode + resize 73/crop 64": lambda f: load_pixels(f, small, draft=False),
        "draft mode + resize 73/crop 64": lambda f: load_pixels(f, small, draft=True),
        "hygiene scan (hash + header + draft decode)": lambda f: check_file(f),
    }
    table = Table(title="decode + resize, images/s (data: ../shared/data/catsdogs)")
    for col in ("images", "method", "1 thread", "2 threads"):
        table.add_column(col, justify="right" if "thread" in col else "left")
    with tempfile.TemporaryDirectory() as tmp:
        sets = {f"catsdogs ({len(photos)}, <=384 px)": photos}
        if args.large:
            sets[f"catsdogs upscaled ({args.large}, 2000x1500)"] = upscale(photos[: args.large], Path(tmp))
        for set_name, files in sets.items():
            for name, fn in methods.items():
                rate(fn, files[:10], 1)  # warm the page cache and the code
                r1, r2 = rate(fn, files, 1), rate(fn, files, 2)
                table.add_row(set_name, name, f"{r1:.0f}", f"{r2:.0f}")
    Console(width=120).print(table)
    print("machine shared with other developers: absolute numbers are noisy, compare rows of one run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
