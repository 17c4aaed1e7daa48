"""Empirical bias correction: make each int8 convolution's mean output match the float model's.

Rounding weights to int8 (and activations to uint8) shifts the mean of a layer's output, and the shift adds up
through the network (Nagel et al. 2019, section 4.2). Here the model is run twice on the calibration images:
once in float, recording each convolution's input range and per-channel mean output, and once with every
convolution's weights rounded exactly as both quantisers round them (per output channel, symmetric, scale =
max|w| / 127, or / 64 for 7-bit ONNX weights; see :func:`fake_quant_weight`) and, optionally, its input rounded
to uint8 over the float range. In that second pass each convolution's per-channel mean shift is measured *after*
the layers before it were corrected and subtracted from its bias, so the next layer sees corrected statistics.
The weights themselves are not changed: the quantiser later rounds them the same way, and the corrected biases
absorb the mean error.

Apply it to a copy with BatchNorm folded (:func:`edge_tl.export.equalize.fold_batchnorm`), or the correction
lands on a bias that the BN then rescales.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

WEIGHT_QMAX = 127  # int8 symmetric weights: ONNX Runtime and ai-edge-quantizer both use [-127, 127]
ACT_LEVELS = 255  # uint8 / int8 activations: 256 levels over [min, max]


def fake_quant_weight(w: torch.Tensor, qmax: int = WEIGHT_QMAX) -> torch.Tensor:
    """``w`` rounded onto the per-output-channel symmetric grid of ``[-qmax, qmax]`` (scale = max|w| / qmax)."""
    scale = w.detach().abs().flatten(1).amax(1).clamp_min(1e-12) / qmax
    shape = (-1, *([1] * (w.dim() - 1)))
    return torch.clamp(torch.round(w / scale.view(shape)), -qmax, qmax) * scale.view(shape)


def fake_quant_act(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """``x`` rounded onto the asymmetric 8-bit grid of ``[min(lo, 0), max(hi, 0)]`` (zero exactly representable)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo <= 0:
        return x
    scale = (hi - lo) / ACT_LEVELS
    zero = round(-lo / scale)
    q = torch.clamp(torch.round(x / scale) + zero, 0, ACT_LEVELS)
    return (q - zero) * scale


@dataclass(frozen=True)
class BiasCorrectionResult:
    layers: int
    images: int
    activations: bool
    mean_shift: float  # mean over layers of the mean |E[y_q] - E[y]| per channel that was corrected away
    max_correction: float  # the largest |bias change|


def _layers(model: nn.Module, skip: set[str]) -> list[tuple[str, nn.Conv2d]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and n not in skip]


def _channel_mean(y: torch.Tensor) -> torch.Tensor:
    return y.transpose(0, 1).flatten(1).mean(1)


def correct_bias(model: nn.Module, images: torch.Tensor, *, activations: bool = True, batch: int = 32,
                 skip: set[str] | None = None, weight_qmax: int = WEIGHT_QMAX) -> BiasCorrectionResult:
    """Correct the biases of every ``Conv2d`` of ``model`` in place from ``images`` (normalised NCHW float), for
    weights rounded onto ``[-weight_qmax, weight_qmax]`` (64 for ONNX Runtime's 7-bit weights).

    The float statistics are gathered in batches of ``batch``; the corrected pass sees all images at once (the
    per-layer means must be known before the next layer runs), so keep ``images`` to a few dozen at 224 px.
    """
    model.eval()
    convs = _layers(model, skip or set())
    stats: dict[str, dict[str, Any]] = {n: {"lo": float("inf"), "hi": float("-inf"), "sum": 0.0} for n, _ in convs}

    def record(name: str):
        def hook(_m: nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> None:
            s = stats[name]
            s["lo"], s["hi"] = min(s["lo"], float(args[0].min())), max(s["hi"], float(args[0].max()))
            s["sum"] = s["sum"] + _channel_mean(out) * len(out)
        return hook

    _run(model, images, [(m, None, record(n)) for n, m in convs], batch)
    n_img = len(images)
    means = {n: stats[n]["sum"] / n_img for n, _ in convs}
    originals = {n: m.weight.data.clone() for n, m in convs}
    deltas: dict[str, torch.Tensor] = {}
    shifts: list[float] = []

    def correct(name: str):
        def hook(_m: nn.Module, _a: tuple[Any, ...], out: torch.Tensor) -> torch.Tensor:
            delta = _channel_mean(out) - means[name]
            deltas[name] = delta
            shifts.append(float(delta.abs().mean()))
            return out - delta.view(1, -1, *([1] * (out.dim() - 2)))
        return hook

    try:
        for n, m in convs:
            m.weight.data = fake_quant_weight(originals[n], weight_qmax)
        # one pass over all images at once: each layer's shift is measured with the layers before it corrected
        _run(model, images, [(m, _pre_quant(stats[n]) if activations else None, correct(n)) for n, m in convs],
             len(images))
    finally:
        for n, m in convs:
            m.weight.data = originals[n]
    biggest = 0.0
    with torch.no_grad():
        for name, m in convs:
            if m.bias is None:
                m.bias = nn.Parameter(torch.zeros(m.out_channels, dtype=m.weight.dtype))
            m.bias.sub_(deltas[name])
            biggest = max(biggest, float(deltas[name].abs().max()))
    return BiasCorrectionResult(len(convs), n_img, activations, float(sum(shifts) / max(1, len(shifts))), biggest)


def _pre_quant(s: dict[str, Any]):
    def pre(_m: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return (fake_quant_act(args[0], s["lo"], s["hi"]), *args[1:])
    return pre


def _shift(delta: torch.Tensor | None):
    def post(_m: nn.Module, _a: tuple[Any, ...], out: torch.Tensor) -> torch.Tensor:
        return out if delta is None else out - delta.view(1, -1, 1, 1)
    return post


def _run(model: nn.Module, images: torch.Tensor, hooks: list[tuple[nn.Module, Any, Any]], batch: int) -> None:
    handles = []
    for m, pre, post in hooks:
        if pre is not None:
            handles.append(m.register_forward_pre_hook(pre))
        if post is not None:
            handles.append(m.register_forward_hook(post))
    try:
        forward_batched(model, images, batch)
    finally:
        for h in handles:
            h.remove()


def forward_batched(model: nn.Module, x: torch.Tensor, batch: int) -> torch.Tensor:
    """``model(x)`` without gradients, in batches of ``batch``, concatenated."""
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)])
