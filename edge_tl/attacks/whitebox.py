"""White-box attacks crafted with gradients of a PyTorch surrogate in [0, 1] pixel space (torchattacks).

The surrogate is a pixel-space module (see :func:`edge_tl.attacks.pixels.pixel_model`): normalisation is inside,
so the L-inf budget is in pixel units. Adversarials come back as float NHWC in [0, 1]; the engine quantises them
to 8 bits before any model judges them.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from typing import Any

import numpy as np

from edge_tl.attacks.registry import AttackSettings, Crafted, register_attack

GRAD_BATCH = 1
"""At most this many images per gradient batch: the backward pass keeps every activation, about 75 MB per
224-px image for a MobileNetV2, on top of torch itself (about 0.65 GB resident once imported) and the ONNX
Runtime session being attacked, so peak memory stays flat whatever ``--batch-size`` is; one image at a time
keeps the default command under 1.5 GB."""


def _run_torchattack(atk: Any, x: np.ndarray, y: np.ndarray, target: np.ndarray | None,
                     batch_size: int, progress: Callable[[int, float], None] | None = None) -> np.ndarray:
    import torch

    if target is not None:
        # the labels passed below are already the targets: map them to themselves (torchattacks 3.3 prints
        # the mode change on stdout, which would corrupt `--json -`)
        with contextlib.redirect_stdout(io.StringIO()):
            atk.set_mode_targeted_by_function(target_map_function=lambda _images, labels: labels)
    labels = target if target is not None else y
    batch_size = min(batch_size, GRAD_BATCH)
    out = []
    for i in range(0, len(x), batch_size):
        xb = torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size].transpose(0, 3, 1, 2))).float() / 255.0
        yb = torch.from_numpy(np.asarray(labels[i:i + batch_size], np.int64))
        out.append(atk(xb, yb).detach().numpy().transpose(0, 2, 3, 1))
        if progress is not None:
            done = min(i + batch_size, len(x))
            progress(done, done / len(x))
    return np.concatenate(out) if out else np.zeros(x.shape, np.float32)


@register_attack("fgsm", "whitebox", description="FGSM (L-inf): one signed-gradient step of size eps (transfer).")
def fgsm(model: Any, x: np.ndarray, y: np.ndarray, eps: float, settings: AttackSettings,
         target: np.ndarray | None = None, progress: Callable[[int, float], None] | None = None) -> Crafted:
    """FGSM (Goodfellow et al. 2015) on ``model``; targeted mode steps towards ``target``."""
    import torchattacks

    return Crafted(_run_torchattack(torchattacks.FGSM(model, eps=eps), x, y, target, settings.batch_size, progress))


@register_attack("pgd", "whitebox", norms=("linf", "l2"),
                 description="PGD (L-inf or L2): iterated gradient steps with random start (transfer).")
def pgd(model: Any, x: np.ndarray, y: np.ndarray, eps: float, settings: AttackSettings,
        target: np.ndarray | None = None, progress: Callable[[int, float], None] | None = None) -> Crafted:
    """PGD (Madry et al. 2018), ``settings.steps`` steps of ``step_size * eps`` (default 2.5 eps / steps);
    ``settings.norm == "l2"`` uses torchattacks' PGDL2 (eps an L2 radius in [0, 1] pixel units)."""
    import torch
    import torchattacks

    torch.manual_seed(settings.seed)
    alpha = eps * (settings.step_size if settings.step_size is not None else 2.5 / settings.steps)
    cls = torchattacks.PGDL2 if settings.norm == "l2" else torchattacks.PGD
    atk = cls(model, eps=eps, alpha=alpha, steps=settings.steps, random_start=settings.random_start)
    return Crafted(_run_torchattack(atk, x, y, target, settings.batch_size, progress))
