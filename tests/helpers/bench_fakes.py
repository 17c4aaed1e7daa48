"""Fake runtimes for the bench tests: loaded in the spawned measurement process by ``load(path, threads=)``.

The file name says how the fake behaves, so the child needs nothing but the path:
``ok*.fake`` runs a small matmul; ``hog*.fake`` also holds ~200 MiB; ``crash*.fake`` kills itself with SIGSEGV;
``bad*.fake`` raises ArtifactError on load; ``bug*.fake`` raises ZeroDivisionError (a bug, not a bad file).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np

from edge_tl.card import InputSpec, ModelCard, sidecar_path
from edge_tl.errors import ArtifactError

CLASSES = ("a", "b", "c")
SPEC = InputSpec(size=8, resize=8, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
LOADER = "helpers.bench_fakes:load"


def card(fmt: str = "onnx", classes: tuple[str, ...] = CLASSES) -> ModelCard:
    return ModelCard(classes=classes, input=SPEC, backbone="fake", weights="none", format=fmt)


def make(folder: Path, name: str, fmt: str = "onnx", classes: tuple[str, ...] = CLASSES) -> Path:
    """Write ``folder/name`` (some bytes) and its sidecar card."""
    path = folder / name
    path.write_bytes(b"fake model " * 100)
    card(fmt, classes).save(sidecar_path(path))
    return path


def pixels(n: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images whose mean brightness decides the class, and their labels (the fake classifies them perfectly)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(CLASSES)
    base = (labels * 100 + 20).astype(np.uint8)[:, None, None, None]
    noise = rng.integers(0, 10, size=(n, SPEC.size, SPEC.size, 3)).astype(np.uint8)
    return (base + noise).astype(np.uint8), labels


class FakeRuntime:
    """Logits peak at the class whose brightness band the image falls in; a matmul gives it some work."""

    name = "fake"

    def __init__(self, path: Path, threads: int) -> None:
        self.path, self.threads, self.card = Path(path), threads, card()
        self._w = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
        self._hog = None
        if self.path.name.startswith("hog"):
            self._hog = np.ones(200 * 2**20, dtype=np.uint8)  # touched: really resident

    def __call__(self, images: np.ndarray) -> np.ndarray:
        self._w @ self._w
        level = images.reshape(len(images), -1).mean(axis=1) / 100.0
        centres = np.arange(len(CLASSES), dtype=np.float32)
        return (-(level[:, None] - centres[None, :] - 0.2) ** 2).astype(np.float32)


def load(path: str, threads: int | None = None) -> FakeRuntime:
    name = Path(path).name
    if name.startswith("bad"):
        raise ArtifactError(f"{path} is not a model", "re-export it")
    if name.startswith("crash"):
        os.kill(os.getpid(), signal.SIGSEGV)
    if name.startswith("bug"):
        return 1 // 0  # type: ignore[return-value]
    return FakeRuntime(Path(path), threads or 1)
