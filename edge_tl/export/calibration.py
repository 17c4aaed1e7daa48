"""Calibration images for static quantisation: real pictures from the run's own split, never random tensors.

:func:`calibration_files` picks up to ``size`` files of a manifest split (seeded shuffle, so the choice is
reproducible); :func:`stream_batches` decodes them a batch at a time (bounded memory) through the one
preprocessing path, reporting each decoded batch to an :class:`edge_tl.progress.Reporter` (the CLI draws it as a
bar; a library caller passes its own or none). The ONNX, TFLite and OpenVINO quantisers all consume these batches.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_tl.card import InputSpec
from edge_tl.errors import DataError
from edge_tl.progress import Reporter, of

if TYPE_CHECKING:
    from edge_tl.data.manifest import Manifest


def calibration_files(manifest: Manifest, size: int, split: str = "train", seed: int = 0) -> list[Path]:
    """Up to ``size`` image paths from ``split`` (seeded shuffle); an empty split raises :class:`DataError`."""
    files = list(manifest.files(split))
    if not files:
        raise DataError(f"no calibration images: the run's '{split}' split is empty",
                        "retrain on a dataset with images in the train split, or use --quantize fp16/none")
    random.Random(seed).shuffle(files)
    return files[:size]


def stream_batches(files: list[Path], spec: InputSpec, batch_size: int = 16, description: str = "calibrating",
                   reporter: Reporter | None = None) -> Iterator[np.ndarray]:
    """Yield uint8 ``(n, H, W, 3)`` batches of ``files`` decoded with ``spec``, reporting them to ``reporter``."""
    from edge_tl.data.preprocess import load_batch

    with of(reporter).task(description, total=len(files), unit="img") as advance:
        for i in range(0, len(files), batch_size):
            chunk = files[i:i + batch_size]
            yield load_batch(chunk, spec)
            advance(len(chunk))


def make_calibration(manifest: Manifest, spec: InputSpec, size: int, split: str = "train", seed: int = 0,
                     reporter: Reporter | None = None):
    """A callable ``batch_size -> Iterator[uint8 batch]`` over the chosen files (re-iterable: each call restarts)."""
    files = calibration_files(manifest, size, split, seed)

    def batches(batch_size: int = 16) -> Iterator[np.ndarray]:
        return stream_batches(files, spec, batch_size, reporter=reporter)

    batches.files = files  # type: ignore[attr-defined]
    return batches
