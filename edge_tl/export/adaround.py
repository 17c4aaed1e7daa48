"""AdaRound: learn whether each int8 weight rounds up or down, layer by layer (Nagel et al. 2020).

Nearest rounding minimises each weight's own error, not the error of the layer's output. AdaRound keeps the
quantisers' grid (per output channel, symmetric, scale ``s = max|w| / 127``, integers in ``[-127, 127]``, or
``[-64, 64]`` for 7-bit ONNX weights; see
:func:`edge_tl.export.bias_correction.fake_quant_weight`) and learns, for every weight, ``floor(w / s) + h(V)``
with ``h`` a rectified sigmoid in ``[0, 1]``. ``V`` is trained with Adam to make the layer's output on the
calibration images match the float model's, plus a regulariser that pushes every ``h`` to 0 or 1 (its exponent
``beta`` annealed from 20 to 2 after a warm-up without it). The layer's weight is then set to the hard-rounded
result: exact multiples of ``s``, so the quantiser later rounds it to itself.

The weights attaining ``max|w|`` in a channel stay exactly ``+-127 s``, so the quantiser recomputes the same scale.
Each layer's inputs come from the model whose earlier layers are already rounded (the "asymmetric" variant: the
layer also learns to undo the error it receives), its targets from the float model. Layers are ``Conv2d`` and
``Linear`` in forward order; fold BatchNorm first (:func:`edge_tl.export.equalize.fold_batchnorm`).

A ``Conv2d`` whose output is larger than :data:`CROP` x :data:`CROP` is trained on a random window of its output
per step (drawn with the seeded generator), computed exactly from the matching window of its zero-padded input.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from edge_tl.export.bias_correction import WEIGHT_QMAX
from edge_tl.export.equalize import run_hooked

ZETA, GAMMA = 1.1, -0.1  # rectified sigmoid stretch: h(V) = clamp(sigmoid(V) * (ZETA - GAMMA) + GAMMA, 0, 1)
BETA_START, BETA_END = 20.0, 2.0
WARMUP = 0.2  # fraction of iterations without the rounding regulariser
ITERS = 200
IMAGES = 32  # calibration images used at most (each layer re-runs the model on them twice)
BATCH = 8
LR = 5e-2  # Adam on V: high, for a short schedule
LAMBDA = 5.0  # weight of the rounding regulariser (a mean over weights; the output error is relative to nearest's)
CROP = 28  # output window side per step for larger Conv2d outputs
THREADS = 1  # steps are small: on a shared 2-core machine two threads measured 2-5x slower (captures 2x)
LAYER_TYPES = (nn.Conv2d, nn.Linear)


@dataclass(frozen=True)
class AdaRoundResult:
    layers: int
    images: int
    iters: int  # per layer
    mean_mse_before: float  # mean over layers of the relative output MSE with nearest rounding
    mean_mse_after: float  # the same with the learned rounding
    flipped: float  # fraction of weights rounded the other way than nearest


class _Stop(Exception):
    """Raised by a hook once the layer of interest has run: the rest of the forward pass is not needed."""


def _forward_order(model: nn.Module, probe: torch.Tensor) -> list[tuple[str, nn.Module]]:
    """``Conv2d``/``Linear`` modules in the order they first run on ``probe``."""
    names = {m: n for n, m in model.named_modules() if isinstance(m, LAYER_TYPES)}
    order: list[tuple[str, nn.Module]] = []

    def hook(mod: nn.Module, _a: tuple[Any, ...], _o: Any) -> None:
        if all(mod is not m for _, m in order):
            order.append((names[mod], mod))

    run_hooked(model, probe, list(names), hook)
    return order


def _capture(model: nn.Module, layer: nn.Module, x: torch.Tensor, batch: int, output: bool) -> torch.Tensor:
    """The input (or output) of ``layer``'s first call for every image of ``x``, in batches of ``batch``."""
    got: list[torch.Tensor] = []

    def hook(_m: nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> None:
        got.append((out if output else args[0]).detach().clone())
        raise _Stop

    handle = layer.register_forward_hook(hook)
    try:
        with torch.no_grad():
            for i in range(0, len(x), batch):
                try:
                    model(x[i:i + batch])
                except _Stop:
                    pass
    finally:
        handle.remove()
    return torch.cat(got)


def _apply(layer: nn.Module, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``layer`` run with weight ``w`` (its bias is a constant here: no gradient reaches the model)."""
    bias = None if layer.bias is None else layer.bias.detach()
    if isinstance(layer, nn.Conv2d):
        return layer._conv_forward(x, w, bias)
    return nn.functional.linear(x, w, bias)


def _h(v: torch.Tensor) -> torch.Tensor:
    return torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


def _sq_error(layer: nn.Module, x: torch.Tensor, w: torch.Tensor, y: torch.Tensor, batch: int) -> tuple[float, float]:
    """``sum((layer_w(x) - y)^2)`` and ``sum(y^2)`` over all rows, in batches."""
    err, power = 0.0, 0.0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            yi = y[i:i + batch]
            err += float(((_apply(layer, x[i:i + batch], w) - yi) ** 2).sum())
            power += float((yi ** 2).sum())
    return err, power


class _Rounding:
    """The learnable rounding of one weight tensor on its fixed per-channel grid."""

    def __init__(self, w: torch.Tensor, qmax: int = WEIGHT_QMAX) -> None:
        shape = (-1, *([1] * (w.dim() - 1)))
        amax = w.abs().flatten(1).amax(1).view(shape)
        self.qmax = qmax
        self.scale = amax.clamp_min(1e-12) / qmax
        ratio = w / self.scale
        self.floor = torch.floor(ratio)
        self.nearest = torch.clamp(torch.round(ratio), -qmax, qmax)
        # the element(s) attaining max|w| keep +-127 exactly, so the quantiser finds the same scale (an all-zero
        # channel stays zero)
        self.pinned = w.abs() == amax
        self.pinned_q = torch.sign(w) * qmax
        rest = (ratio - self.floor).clamp(1e-4, 1 - 1e-4)  # start where h(V) equals the fractional part
        self.v = (-torch.log((ZETA - GAMMA) / (rest - GAMMA) - 1)).requires_grad_(True)

    def soft(self) -> torch.Tensor:
        q = torch.clamp(self.floor + _h(self.v), -self.qmax, self.qmax)
        return torch.where(self.pinned, self.pinned_q, q) * self.scale

    def hard_q(self) -> torch.Tensor:
        with torch.no_grad():
            q = torch.clamp(self.floor + (self.v >= 0).to(self.floor.dtype), -self.qmax, self.qmax)
            return torch.where(self.pinned, self.pinned_q, q)

    def regulariser(self, beta: float) -> torch.Tensor:
        return (1 - (2 * _h(self.v) - 1).abs().pow(beta)).mean()


def _beta(step: int, iters: int) -> float | None:
    """``None`` during the warm-up, then ``beta`` decayed linearly from :data:`BETA_START` to :data:`BETA_END`."""
    warm = int(WARMUP * iters)
    if step < warm:
        return None
    progress = (step - warm) / max(1, iters - warm)
    return BETA_END + (BETA_START - BETA_END) * (1 - progress)


def _croppable(layer: nn.Module, y: torch.Tensor, crop: int) -> bool:
    """Whether ``layer``'s output ``y`` is trained on windows: a zero-padded ``Conv2d`` larger than ``crop``."""
    return (isinstance(layer, nn.Conv2d) and layer.padding_mode == "zeros" and not isinstance(layer.padding, str)
            and y.dim() == 4 and max(y.shape[-2:]) > crop)


def _pad(layer: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``x`` with ``layer``'s zero padding applied (the windows are then convolved without padding)."""
    ph, pw = layer.padding
    return F.pad(x, (pw, pw, ph, ph))


def _window_conv(layer: nn.Conv2d, x_pad: torch.Tensor, w: torch.Tensor, oy: int, ox: int, ch: int, cw: int,
                 idx: torch.Tensor | None = None) -> torch.Tensor:
    """Output rows ``oy:oy+ch``, cols ``ox:ox+cw`` of ``layer`` (weight ``w``) on images ``idx`` of padded ``x_pad``."""
    (sy, sx), (dy, dx), (ky, kx) = layer.stride, layer.dilation, layer.kernel_size
    win = x_pad[..., oy * sy:oy * sy + (ch - 1) * sy + (ky - 1) * dy + 1,
                ox * sx:ox * sx + (cw - 1) * sx + (kx - 1) * dx + 1]
    if idx is not None:
        win = win[idx]  # after slicing: only the window is copied
    bias = None if layer.bias is None else layer.bias.detach()
    return F.conv2d(win, w, bias, layer.stride, 0, layer.dilation, layer.groups)


def _learn(layer: nn.Module, rnd: _Rounding, x: torch.Tensor, y: torch.Tensor, power: float, iters: int,
           batch: int, lam: float, gen: torch.Generator, crop: int = CROP) -> None:
    """Train ``rnd`` on ``layer``'s inputs ``x`` and float outputs ``y``; the output error is divided by ``power``
    (the mean squared error of nearest rounding), so ``lam`` means the same on every layer."""
    opt = torch.optim.Adam([rnd.v], lr=LR)
    cropped = _croppable(layer, y, crop)
    if cropped:
        x = _pad(layer, x)
        ch, cw = min(crop, y.shape[-2]), min(crop, y.shape[-1])
    for step in range(iters):
        idx = torch.randperm(len(x), generator=gen)[:batch]
        if cropped:
            oy = int(torch.randint(y.shape[-2] - ch + 1, (1,), generator=gen))
            ox = int(torch.randint(y.shape[-1] - cw + 1, (1,), generator=gen))
            out = _window_conv(layer, x, rnd.soft(), oy, ox, ch, cw, idx)
            target = y[..., oy:oy + ch, ox:ox + cw][idx]
        else:
            out, target = _apply(layer, x[idx], rnd.soft()), y[idx]
        loss = ((out - target) ** 2).mean() / power
        beta = _beta(step, iters)
        if beta is not None:
            loss = loss + lam * rnd.regulariser(beta)
        opt.zero_grad()
        loss.backward()
        opt.step()


def adaround(model: nn.Module, x: torch.Tensor, *, iters: int = ITERS, batch: int = BATCH, images: int = IMAGES,
             seed: int = 0, lam: float = LAMBDA, threads: int | None = THREADS, weight_qmax: int = WEIGHT_QMAX,
             callback: Callable[[str, int, int], None] | None = None) -> AdaRoundResult:
    """Round every ``Conv2d``/``Linear`` weight of ``model`` in place with AdaRound on ``x`` (normalised NCHW).

    ``iters`` Adam steps per layer, each on ``batch`` images drawn at random (seeded by ``seed``) from the first
    ``images`` of ``x``, on the grid ``[-weight_qmax, weight_qmax]`` (64 for 7-bit ONNX weights).
    ``threads``: torch threads while it runs (``None``: leave as set). ``callback(name, done, total)`` is called
    after each layer.
    """
    old = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _adaround(model, x[:images], iters, batch, seed, lam, weight_qmax, callback)
    finally:
        torch.set_num_threads(old)


def _adaround(model: nn.Module, x: torch.Tensor, iters: int, batch: int, seed: int, lam: float, qmax: int,
              callback: Callable[[str, int, int], None] | None) -> AdaRoundResult:
    model.eval()
    reference = copy.deepcopy(model)  # the float model: the targets
    layers = _forward_order(model, x[:1])
    ref_layers = dict(reference.named_modules())
    gen = torch.Generator().manual_seed(seed)
    before: list[float] = []
    after: list[float] = []
    flipped, total = 0, 0
    for done, (name, layer) in enumerate(layers, 1):
        inputs = _capture(model, layer, x, batch * 4, output=False)
        targets = _capture(reference, ref_layers[name], x, batch * 4, output=True)
        rnd = _Rounding(layer.weight.detach().clone(), qmax)
        near_err, y_power = _sq_error(layer, inputs, rnd.nearest * rnd.scale, targets, batch * 4)
        with torch.enable_grad():
            _learn(layer, rnd, inputs, targets, near_err / targets.numel() or 1.0, iters, batch, lam, gen)
        q = rnd.hard_q()
        w_q = q * rnd.scale
        before.append(near_err / max(y_power, 1e-12))
        after.append(_sq_error(layer, inputs, w_q, targets, batch * 4)[0] / max(y_power, 1e-12))
        flipped += int((q != rnd.nearest).sum())
        total += q.numel()
        with torch.no_grad():
            layer.weight.copy_(w_q)
        del inputs, targets, rnd
        if callback is not None:
            callback(name, done, len(layers))
    n = max(1, len(layers))
    return AdaRoundResult(len(layers), len(x), iters, sum(before) / n, sum(after) / n, flipped / max(1, total))
