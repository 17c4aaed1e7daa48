"""The "ideal class image": gradient ascent on a class logit from noise, kept smooth by a total-variation
penalty, random jitter and a small L2 pull towards grey (feature visualisation, Olah et al. 2017).

The penalties are weighted relative to the class score (each gradient is scaled to unit norm before they are
added), so one ``tv_weight`` suits a tiny CNN and an ImageNet backbone alike. The image is optimised in [0, 1]
pixel space through a sigmoid, on a pixel-space model (normalisation inside,
see :func:`edge_tl.attacks.pixels.pixel_model`). The reported probability is the model's on the final image
rounded to 8 bits, as it would be saved.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_tl.errors import ConfigError


@dataclass(frozen=True)
class VisualizeSettings:
    """Optimisation knobs: ``steps`` of Adam at ``lr`` on the sigmoid's logits. Each step's gradient is the
    unit-norm gradient of the class score plus ``tv_weight`` times the unit-norm gradient of the total variation
    plus ``l2_weight`` times that of the pull towards grey, so the weights are relative to the class score and
    mean the same for a tiny CNN and an ImageNet backbone (0 = off, 1 = as strong as the class score). Each
    step rolls the image by up to ``jitter`` pixels."""

    steps: int = 200
    lr: float = 0.05
    tv_weight: float = 0.3
    l2_weight: float = 0.05
    jitter: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.lr <= 0 or self.tv_weight < 0 or self.l2_weight < 0 or self.jitter < 0:
            raise ConfigError("visualize needs steps >= 1, lr > 0 and non-negative weights and jitter")


@dataclass(frozen=True)
class ClassImage:
    """One optimised image (uint8 HWC) with what the model thinks of it."""

    name: str
    index: int
    image: np.ndarray
    probability: float
    logit: float
    total_variation: float

    def to_json(self) -> dict[str, Any]:
        """Everything but the pixels."""
        return {"class": self.name, "index": self.index, "probability": self.probability, "logit": self.logit,
                "total_variation": self.total_variation}


def total_variation(image: np.ndarray) -> float:
    """Mean absolute difference between neighbouring pixels (both directions) of an HWC image, in [0, 1]
    units (uint8 input is scaled)."""
    x = image.astype(np.float64) / (255.0 if image.dtype == np.uint8 else 1.0)
    return float(np.abs(np.diff(x, axis=0)).mean() + np.abs(np.diff(x, axis=1)).mean())


def resolve_classes(names: Sequence[str], classes: Sequence[str]) -> list[int]:
    """Indices of class ``names`` (a name, or an index for long lists such as ImageNet's); unknown names
    raise with the closest matches (and the whole list when it is short)."""
    out = []
    for name in names:
        if name in classes:
            out.append(list(classes).index(name))
        elif name.isdigit() and int(name) < len(classes):
            out.append(int(name))
        else:
            close = difflib.get_close_matches(name, list(classes), n=5, cutoff=0.5)
            hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
            hint += (f"classes: {', '.join(classes)}" if len(classes) <= 40
                     else f"give one of the model's {len(classes)} class names or an index 0..{len(classes) - 1}")
            raise ConfigError(f"unknown class '{name}'", hint)
    return out


def ideal_image(model: Any, index: int, size: int, settings: VisualizeSettings | None = None,
                name: str | None = None) -> ClassImage:
    """Optimise a ``size`` x ``size`` image that maximises logit ``index`` of the pixel-space ``model``."""
    import torch

    s = settings or VisualizeSettings()
    gen = torch.Generator().manual_seed(s.seed)
    param = (0.2 * torch.randn(1, 3, size, size, generator=gen)).requires_grad_(True)
    opt = torch.optim.Adam([param], lr=s.lr)
    model.eval()
    for _ in range(s.steps):
        img = torch.sigmoid(param)
        view = img
        if s.jitter:
            dy, dx = (int(v) for v in torch.randint(-s.jitter, s.jitter + 1, (2,), generator=gen))
            view = torch.roll(img, shifts=(dy, dx), dims=(2, 3))
        score = model(view)[0, index]
        g_score = torch.autograd.grad(score, param, retain_graph=True)[0]
        g_tv = torch.autograd.grad(_tv(img), param, retain_graph=True)[0]
        g_l2 = torch.autograd.grad(((img - 0.5) ** 2).mean(), param)[0]
        param.grad = -_unit(g_score) + s.tv_weight * _unit(g_tv) + s.l2_weight * _unit(g_l2)
        opt.step()
    with torch.no_grad():
        pixels = np.rint(torch.sigmoid(param)[0].permute(1, 2, 0).numpy() * 255.0).astype(np.uint8)
        logits = model(torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255.0)[0].double()
        prob = float(torch.softmax(logits, 0)[index])
    return ClassImage(name or str(index), index, pixels, prob, float(logits[index]), total_variation(pixels))


def _unit(g: Any) -> Any:
    """``g`` scaled to unit L2 norm (zero stays zero), so the weights are relative to the class-score term."""
    return g / g.norm().clamp_min(1e-12)


def _tv(img: Any) -> Any:
    return (img[:, :, 1:, :] - img[:, :, :-1, :]).abs().mean() + (img[:, :, :, 1:] - img[:, :, :, :-1]).abs().mean()


def save_grid(images: Sequence[ClassImage], path: Path, title: str = "") -> Path:
    """A row of class images titled with class and probability, as PNG (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edge_tl._io import atomic_path

    cols = min(len(images), 4)
    rows = (len(images) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, im in zip(axes.ravel(), images):
        ax.imshow(im.image, interpolation="nearest" if im.image.shape[0] < 96 else "antialiased")
        ax.set_title(f"{im.name}\np = {im.probability:.1%}", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    try:
        with atomic_path(Path(path)) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
    return Path(path)
