"""The "ideal class image": gradient ascent on a class logit, from noise, towards an image of the class that a
person (and a different network) recognises.

Two methods (see :mod:`edge_tl.attacks.featureviz`): ``fourier`` (the default) optimises a 1/f-scaled Fourier
spectrum in a decorrelated colour space and looks at the image through a random shift, scale and rotation at
every step (Olah et al. 2017, "Feature Visualization"); ``pixel`` is the plain lesson: free pixels through a
sigmoid, rolled by a few pixels per step. Both add a total-variation penalty and a small L2 pull towards grey.

The penalties are weighted relative to the class score (each gradient is scaled to unit norm before they are
added), so one ``tv_weight`` suits a tiny CNN and an ImageNet backbone alike. The model is a pixel-space model
(normalisation inside, see :func:`edge_tl.attacks.pixels.pixel_model`). The reported probability is the model's
on the final image rounded to 8 bits, as it would be saved; :func:`judge` asks a second model about it.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edge_tl.attacks.featureviz import PARAMETRISATIONS, RobustTransform, make_parametrisation
from edge_tl.errors import ConfigError


@dataclass(frozen=True)
class VisualizeSettings:
    """Optimisation knobs: ``steps`` of Adam at ``lr`` on the parameters of image parametrisation ``param``
    (``fourier`` or ``pixel``). Each step's gradient is the unit-norm gradient of the class score plus
    ``tv_weight`` times the unit-norm gradient of the total variation plus ``l2_weight`` times that of the pull
    towards grey, so the weights are relative to the class score and mean the same for a tiny CNN and an ImageNet
    backbone (0 = off, 1 = as strong as the class score). The score is the mean over ``views`` random views of
    the image: padded by ``pad`` grey pixels, shifted by up to ``jitter`` pixels, scaled by ``1 +- scale`` and
    rotated by up to ``rotate`` degrees. :meth:`preset` gives each parametrisation's defaults."""

    steps: int = 128
    lr: float = 0.05
    tv_weight: float = 0.05
    l2_weight: float = 0.0
    jitter: int = 8
    seed: int = 0
    param: str = "fourier"
    pad: int = 12
    scale: float = 0.1
    rotate: float = 10.0
    views: int = 1

    def __post_init__(self) -> None:
        if self.steps < 1 or self.lr <= 0 or self.tv_weight < 0 or self.l2_weight < 0 or self.views < 1:
            raise ConfigError("visualize needs steps >= 1, lr > 0, views >= 1 and non-negative weights")
        self.transform()  # validates pad, jitter, scale and rotate
        if self.param not in PARAMETRISATIONS:
            raise ConfigError(f"unknown image parametrisation '{self.param}'",
                              f"choose one of {', '.join(PARAMETRISATIONS)}")

    @classmethod
    def preset(cls, param: str = "fourier", **overrides: Any) -> VisualizeSettings:
        """The defaults of ``param`` with ``overrides`` (``None`` values are ignored)."""
        if param not in PRESETS:
            raise ConfigError(f"unknown image parametrisation '{param}'", f"choose one of {', '.join(PRESETS)}")
        return cls(**{**PRESETS[param], **{k: v for k, v in overrides.items() if v is not None}})

    def transform(self) -> RobustTransform:
        return RobustTransform(pad=self.pad, jitter=self.jitter, scale=self.scale, degrees=self.rotate)


PRESETS: dict[str, dict[str, Any]] = {
    "fourier": {},
    "pixel": {"param": "pixel", "steps": 200, "tv_weight": 0.3, "l2_weight": 0.05, "pad": 0, "jitter": 4,
              "scale": 0.0, "rotate": 0.0},
}
"""Each parametrisation's changes to the defaults (which are the Fourier method's, with Lucid's transformation
robustness); the pixel one is the lesson's: roll by a few pixels, stronger TV and a pull towards grey."""


@dataclass(frozen=True)
class Judgement:
    """What a second model (``judge``) says about an image: the class's probability and rank (1 = top)."""

    judge: str
    probability: float
    rank: int
    top: str

    def to_json(self) -> dict[str, Any]:
        return {"judge": self.judge, "probability": self.probability, "rank": self.rank, "top": self.top}


@dataclass(frozen=True)
class ClassImage:
    """One optimised image (uint8 HWC) with what the model thinks of it (and a second model, when judged)."""

    name: str
    index: int
    image: np.ndarray
    probability: float
    logit: float
    total_variation: float
    seconds: float = 0.0
    judged: Judgement | None = None

    def to_json(self) -> dict[str, Any]:
        """Everything but the pixels."""
        return {"class": self.name, "index": self.index, "probability": self.probability, "logit": self.logit,
                "total_variation": self.total_variation, "seconds": self.seconds,
                "judged": self.judged.to_json() if self.judged else None}


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
                name: str | None = None, progress: Callable[[int, int], None] | None = None) -> ClassImage:
    """Optimise a ``size`` x ``size`` image that maximises logit ``index`` of the pixel-space ``model``;
    ``progress(step, steps)`` is called after each step."""
    import torch

    s = settings or VisualizeSettings.preset()
    gen = torch.Generator().manual_seed(s.seed)
    image = make_parametrisation(s.param, size, gen)
    transform = s.transform()
    opt = torch.optim.Adam(image.params, lr=s.lr)
    model.eval()
    start = time.perf_counter()
    for step in range(s.steps):
        img = image()
        views = transform(img.expand(s.views, -1, -1, -1), gen)
        score = model(views)[:, index].mean()
        g_score = torch.autograd.grad(score, image.params, retain_graph=True)
        terms = [(-1.0, g_score)]
        if s.tv_weight:
            terms.append((s.tv_weight, torch.autograd.grad(_tv(img), image.params, retain_graph=True)))
        if s.l2_weight:
            terms.append((s.l2_weight, torch.autograd.grad(((img - 0.5) ** 2).mean(), image.params)))
        for i, p in enumerate(image.params):
            p.grad = sum(w * _unit(g[i]) for w, g in terms)
        opt.step()
        if progress:
            progress(step + 1, s.steps)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        pixels = np.rint(image()[0].permute(1, 2, 0).numpy() * 255.0).astype(np.uint8)
        logits = model(to_tensor(pixels))[0].double()
        prob = float(torch.softmax(logits, 0)[index])
    return ClassImage(name or str(index), index, pixels, prob, float(logits[index]), total_variation(pixels),
                      seconds)


def to_tensor(pixels: np.ndarray) -> Any:
    """A uint8 HWC image as a (1, 3, H, W) float tensor in [0, 1]."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)[None].float() / 255.0


def judge(image: ClassImage, model: Any, classes: Sequence[str], label: str, size: int | None = None) -> ClassImage:
    """``image`` with what a second pixel-space ``model`` (named ``label``, class names ``classes`` in the same
    order as the first model's) thinks of it: the class's probability and rank. The image is resized
    (bilinear, antialiased) to ``size`` when given, e.g. the judge's own input size."""
    import torch
    import torch.nn.functional as F

    x = to_tensor(image.image)
    if size and size != x.shape[-1]:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    with torch.no_grad():
        probs = torch.softmax(model.eval()(x)[0].double(), 0)
    p = float(probs[image.index])
    rank = int((probs > probs[image.index]).sum()) + 1
    return replace(image, judged=Judgement(label, p, rank, classes[int(probs.argmax())]))


def _unit(g: Any) -> Any:
    """``g`` scaled to unit L2 norm (zero stays zero), so the weights are relative to the class-score term."""
    return g / g.norm().clamp_min(1e-12)


def _tv(img: Any) -> Any:
    return (img[:, :, 1:, :] - img[:, :, :-1, :]).abs().mean() + (img[:, :, :, 1:] - img[:, :, :, :-1]).abs().mean()


def save_grid(images: Sequence[ClassImage], path: Path, title: str = "") -> Path:
    """A row of class images titled with class and probability, as PNG (written atomically)."""
    from matplotlib.figure import Figure

    from edge_tl._io import atomic_path

    cols = min(len(images), 4)
    rows = (len(images) + cols - 1) // cols
    fig = Figure(figsize=(3.2 * cols, 3.4 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, im in zip(axes.ravel(), images):
        ax.imshow(im.image, interpolation="nearest" if im.image.shape[0] < 96 else "antialiased")
        ax.set_title(f"{im.name}\np = {im.probability:.1%}", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return Path(path)
