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
from edge_tl.runtimes import BATCH, check_pixels, default_threads, run_batched
from edge_tl.runtimes.base import FloatOutputs, register_card_reader, register_runtime

if TYPE_CHECKING:
    import torch


class TorchRuntime(FloatOutputs):
    """A checkpoint on CPU in eval mode: pixels ``(N, H, W, 3)`` -> float32 logits ``(N, C)``."""

    name = "pytorch"

    def __init__(self, model: torch.nn.Module, card: ModelCard, path: Path, threads: int, batch: int = BATCH) -> None:
        self.model = model.eval()
        self.card = card
        self.path = Path(path)
        self.threads = threads
        self.batch = batch  # images per forward pass (activations grow with it)
        self.layout = "NCHW"

    def __call__(self, images: np.ndarray) -> np.ndarray:
        x = check_pixels(images, self.card.input)
        return run_batched(lambda p: self._engine(self.input_tensor(p)), x, self.batch)

    def input_tensor(self, pixels: np.ndarray) -> np.ndarray:
        """Pixels -> the normalised float32 NCHW tensor the model takes."""
        return normalize(pixels, self.card.input, "NCHW")

    def run_tensor(self, x: np.ndarray) -> np.ndarray:
        """Forward passes (``batch`` images each) on a normalised float32 NCHW tensor -> float32 logits."""
        return run_batched(self._engine, x, self.batch)

    def _engine(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.model(torch.from_numpy(x)).float().numpy().astype(np.float32, copy=False)

    def __repr__(self) -> str:
        return f"TorchRuntime({self.path}, threads={self.threads})"


@register_card_reader(".pt")
def read_card(path: Path) -> ModelCard:
    """A checkpoint's card: the run folder's ``card.json`` when it is there, else the one inside ``model.pt``
    (read without unpickling code)."""
    run_card = Path(path).parent / "card.json"
    if run_card.is_file():
        return ModelCard.load(run_card)
    from edge_tl.models.checkpoint import read_card as read_checkpoint_card

    return read_checkpoint_card(path)


@register_runtime(".pt", "pytorch")
def load_torch(path: Path, threads: int | None = None, **_: object) -> TorchRuntime:
    """Load ``runs/NAME/model.pt`` (via ``edge_tl.models.checkpoint.load_checkpoint``, weights_only)."""
    import torch

    from edge_tl.models.checkpoint import load_checkpoint

    n = default_threads(threads)
    torch.set_num_threads(n)
    model, card = load_checkpoint(Path(path))
    return TorchRuntime(model.cpu(), card, Path(path), n)


def from_backbone(name: str, weights: str = "default", threads: int | None = None) -> TorchRuntime:
    """A registered backbone with its own pretrained head (ImageNet names for the real backbones) as a Runtime.

    ``weights`` is as in :func:`edge_tl.models.create_model`. The card says format ``pytorch`` and carries the
    backbone's own preprocessing, so predict, attack and visualise treat it like any loaded model file.
    """
    import torch

    from edge_tl.card import library_versions, now_iso
    from edge_tl.models import create_model, get_spec, imagenet_classes, weights_label

    n = default_threads(threads)
    torch.set_num_threads(n)
    spec = get_spec(name)
    model = create_model(name, weights=weights)
    classes = imagenet_classes() if model.num_classes == 1000 else [str(i) for i in range(model.num_classes)]
    card = ModelCard(classes=tuple(classes), input=model.input_spec or spec.input_spec(), backbone=name,
                     weights=weights_label(spec, getattr(model, "weights_info", None)), format="pytorch",
                     versions=library_versions("torch", "torchvision"), created=now_iso())
    return TorchRuntime(model.cpu(), card, Path(name), n)
