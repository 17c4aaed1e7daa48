"""PyTorch runtime: a run's ``model.pt`` checkpoint behind the :class:`~edge_tl.runtimes.base.Runtime` protocol.

This is the reference every exported artefact is compared with (``edge_tl.parity``); it also exposes the
``torch.nn.Module`` as ``.model`` for white-box consumers (attacks, visualisation).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_tl.card import ModelCard
from edge_tl.data.preprocess import normalize
from edge_tl.runtimes import check_pixels, default_threads, run_batched, softmax
from edge_tl.runtimes.base import register_runtime

if TYPE_CHECKING:
    import torch


class TorchRuntime:
    """A checkpoint on CPU in eval mode: pixels ``(N, H, W, 3)`` -> float32 logits ``(N, C)``."""

    name = "pytorch"

    def __init__(self, model: torch.nn.Module, card: ModelCard, path: Path, threads: int) -> None:
        self.model = model.eval()
        self.card = card
        self.path = Path(path)
        self.threads = threads

    def __call__(self, images: np.ndarray) -> np.ndarray:
        x = check_pixels(images, self.card.input)
        return run_batched(self._forward, x)

    def _forward(self, pixels: np.ndarray) -> np.ndarray:
        import torch

        t = torch.from_numpy(normalize(pixels, self.card.input, "NCHW"))
        with torch.inference_mode():
            return self.model(t).float().numpy().astype(np.float32, copy=False)

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        return softmax(self(images))

    def raw(self, images: np.ndarray) -> np.ndarray:
        """PyTorch output is float logits, so raw equals ``__call__``."""
        return self(images)

    def __repr__(self) -> str:
        return f"TorchRuntime({self.path}, threads={self.threads})"


@register_runtime(".pt", "pytorch")
def load_torch(path: Path, threads: int | None = None, **_: object) -> TorchRuntime:
    """Load ``runs/NAME/model.pt`` (via ``edge_tl.models.checkpoint.load_checkpoint``, weights_only)."""
    import torch

    from edge_tl.models.checkpoint import load_checkpoint

    n = default_threads(threads)
    torch.set_num_threads(n)
    model, card = load_checkpoint(Path(path))
    return TorchRuntime(model.cpu(), card, Path(path), n)
