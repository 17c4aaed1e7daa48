"""Batch-norm folding and cross-layer equalisation (CLE) of a PyTorch model before it goes to a quantiser.

Both are applied to a copy of the run's model so that the ONNX and the TFLite quantisers start from the same
prepared weights (Nagel et al. 2019, "Data-Free Quantization Through Weight Equalization and Bias Correction").

* :func:`fold_batchnorm` folds every ``Conv2d -> BatchNorm2d`` pair into the convolution (the BN becomes an
  identity, or its activation for timm's ``BatchNormAct2d``): exact up to float rounding.
* :func:`equalize` rescales the output channels of a convolution and the matching input channels of the next one,
  across a ReLU (positively homogeneous: ``relu(x / s) = relu(x) / s``), so both get the same per-channel weight
  range ``sqrt(r1 * r2)``; repeated until the ranges stop moving. The float function is unchanged. ReLU6 is not
  homogeneous; with ``relu6="replace"`` it becomes a ReLU first (as in the paper), which changes the float model
  wherever an activation exceeded 6.

The pairs are found by tracing tensors through the leaf modules on one probe batch (forward hooks), so any
architecture built from modules works; a tensor that something other than the next module also reads (a residual
``+``) is never rescaled, and :func:`equalize` checks the model's outputs on the probe before returning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from edge_tl.errors import ExportError

RELU6_MODES = ("keep", "replace")
HOMOGENEOUS = (nn.ReLU, nn.Identity, nn.PReLU)  # PReLU only with one shared slope: checked in _homogeneous


@dataclass(frozen=True)
class _Leaf:
    name: str
    module: nn.Module
    inputs: tuple[int, ...]  # index of the leaf that produced each tensor input (-1: the model input or a function)


def run_hooked(model: nn.Module, probe: torch.Tensor, modules: list[nn.Module], hook: Any) -> None:
    """``model(probe)`` without gradients, with ``hook`` as a forward hook on each of ``modules`` meanwhile."""
    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        with torch.no_grad():
            model(probe)
    finally:
        for h in handles:
            h.remove()


def _trace(model: nn.Module, probe: torch.Tensor) -> tuple[list[_Leaf], dict[int, int]]:
    """Leaf modules in execution order with their producers, and how many leaves read each leaf's output.

    Producers are looked up by tensor identity at the moment a module runs, so in-place activations and
    ``Identity`` (which return their input object) chain correctly.
    """
    leaves: list[_Leaf] = []
    producer: dict[int, int] = {}
    keep: list[torch.Tensor] = []  # hold every tensor so no id is reused during the pass
    names = {m: n for n, m in model.named_modules()}

    def hook(mod: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        if not isinstance(out, torch.Tensor):
            return
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        keep.extend([*tensors, out])
        leaves.append(_Leaf(names[mod], mod, tuple(producer.get(id(a), -1) for a in tensors)))
        producer[id(out)] = len(leaves) - 1

    inside = {id(c) for p in model.modules() if _is_bn_act(p) for c in p.modules() if c is not p}
    run_hooked(model, probe, [m for m in model.modules()
                              if (not list(m.children()) or _is_bn_act(m)) and id(m) not in inside], hook)
    readers: dict[int, int] = {}
    for leaf in leaves:
        for i in leaf.inputs:
            readers[i] = readers.get(i, 0) + 1
    return leaves, readers


def _is_bn_act(m: nn.Module) -> bool:
    """timm's ``BatchNormAct2d``: a BatchNorm2d subclass with an activation (and drop) inside."""
    return isinstance(m, nn.BatchNorm2d) and hasattr(m, "act")


def _set(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, new)


def _is_conv(m: nn.Module) -> bool:
    return isinstance(m, nn.Conv2d) and m.padding_mode == "zeros"


def fold_batchnorm(model: nn.Module, probe: torch.Tensor) -> int:
    """Fold each BatchNorm2d that reads only a convolution's output into that convolution; return the count."""
    from torch.nn.utils.fusion import fuse_conv_bn_weights

    leaves, readers = _trace(model.eval(), probe)
    folded = 0
    for leaf in leaves:
        bn = leaf.module
        if not isinstance(bn, nn.BatchNorm2d) or len(leaf.inputs) != 1 or not bn.track_running_stats:
            continue
        src = leaves[leaf.inputs[0]] if leaf.inputs[0] >= 0 else None
        if src is None or not _is_conv(src.module) or readers.get(leaf.inputs[0], 0) != 1:
            continue
        conv = src.module
        w, b = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps,
                                    bn.weight, bn.bias)
        conv.weight, conv.bias = w, b
        replacement = nn.Sequential(bn.drop, bn.act) if _is_bn_act(bn) else nn.Identity()
        _set(model, leaf.name, replacement)
        folded += 1
    return folded


def _activated(via: list[_Leaf]) -> bool:
    """At least one real activation in between: a bare conv -> conv link is a block boundary, where a residual
    ``+`` (invisible to module hooks) may also read the tensor."""
    return any(isinstance(m, (nn.ReLU, nn.ReLU6, nn.PReLU)) for v in via for m in v.module.modules())


def _homogeneous(m: nn.Module, relu6: str) -> bool:
    if isinstance(m, nn.PReLU):
        return m.weight.numel() == 1
    if isinstance(m, nn.Sequential):
        return all(_homogeneous(c, relu6) for c in m)
    if isinstance(m, nn.Dropout):
        return True
    return isinstance(m, HOMOGENEOUS) or (relu6 == "replace" and isinstance(m, nn.ReLU6))


@dataclass(frozen=True)
class Pair:
    """Two convolutions whose shared channels can be rescaled: ``first``'s outputs are ``second``'s inputs."""

    first: str
    second: str
    via: tuple[str, ...]  # the activation modules in between


def find_pairs(model: nn.Module, probe: torch.Tensor, relu6: str = "keep") -> list[Pair]:
    """Conv -> homogeneous activation(s) -> Conv chains where every intermediate tensor has one reader."""
    leaves, readers = _trace(model.eval(), probe)
    pairs: list[Pair] = []
    for leaf in leaves:
        second = leaf.module
        if not _is_conv(second) or len(leaf.inputs) != 1:
            continue
        via: list[_Leaf] = []
        idx = leaf.inputs[0]
        while idx >= 0 and not _is_conv(leaves[idx].module) and _homogeneous(leaves[idx].module, relu6) \
                and len(leaves[idx].inputs) == 1 and readers.get(idx, 0) == 1:
            via.append(leaves[idx])
            idx = leaves[idx].inputs[0]
        if idx < 0 or not _is_conv(leaves[idx].module) or readers.get(idx, 0) != 1 or not _activated(via):
            continue
        cur = leaves[idx]
        first = cur.module
        groups_ok = second.groups == 1 or (second.groups == second.in_channels == second.out_channels)
        if first.out_channels == second.in_channels and groups_ok:
            pairs.append(Pair(cur.name, leaf.name, tuple(v.name for v in reversed(via))))
    return pairs


def channel_ranges(conv: nn.Conv2d, side: str) -> torch.Tensor:
    """Per-channel max |w|: of each output channel (``side="out"``) or of each input channel (``"in"``)."""
    w = conv.weight.detach().abs()
    if side == "out":
        return w.flatten(1).amax(1)
    if conv.groups == 1:
        return w.transpose(0, 1).flatten(1).amax(1)
    return w.flatten(1).amax(1)  # depthwise: input channel i is output channel i


def range_spread(conv: nn.Conv2d) -> float:
    """How unequal the per-output-channel weight ranges are: largest / smallest range (1.0 = all equal)."""
    r = channel_ranges(conv, "out")
    return float(r.max() / r.min().clamp_min(1e-12))


def _scale_pair(first: nn.Conv2d, second: nn.Conv2d, eps: float = 1e-8) -> float:
    r1, r2 = channel_ranges(first, "out"), channel_ranges(second, "in")
    ok = (r1 > eps) & (r2 > eps)
    s = torch.where(ok, torch.sqrt(r1 / r2.clamp_min(eps)), torch.ones_like(r1))
    with torch.no_grad():
        first.weight.div_(s.view(-1, *([1] * (first.weight.dim() - 1))))
        if first.bias is not None:
            first.bias.div_(s)
        if second.groups == 1:
            second.weight.mul_(s.view(1, -1, *([1] * (second.weight.dim() - 2))))
        else:
            second.weight.mul_(s.view(-1, *([1] * (second.weight.dim() - 1))))
    return float((s.log().abs()).max())


def _replace_relu6(model: nn.Module, names: set[str]) -> None:
    for name in names:
        mod = model.get_submodule(name)
        if isinstance(mod, nn.ReLU6):
            _set(model, name, nn.ReLU(inplace=mod.inplace))
        elif isinstance(mod, nn.Sequential):
            for i, c in enumerate(mod):
                if isinstance(c, nn.ReLU6):
                    mod[i] = nn.ReLU(inplace=c.inplace)


@dataclass(frozen=True)
class EqualizeResult:
    pairs: int
    iterations: int
    folded: int
    relu6_replaced: int
    max_output_change: float  # max |Δoutput| on the probe against the model before (ReLU6 kept: rounding only)


def equalize(model: nn.Module, probe: torch.Tensor, *, relu6: str = "keep", max_iter: int = 20,
             tol: float = 1e-4) -> EqualizeResult:
    """Fold BN into the convolutions, then equalise every conv pair of ``model`` in place (see module doc)."""
    if relu6 not in RELU6_MODES:
        raise ExportError(f"unknown relu6 handling '{relu6}'", f"use one of: {', '.join(RELU6_MODES)}")
    model.eval()
    with torch.no_grad():
        before = model(probe)
    folded = fold_batchnorm(model, probe)
    pairs = find_pairs(model, probe, relu6)
    n6 = sum(isinstance(m, nn.ReLU6) for m in model.modules())
    if relu6 == "replace":
        _replace_relu6(model, {v for p in pairs for v in p.via})
    modules = [(model.get_submodule(p.first), model.get_submodule(p.second)) for p in pairs]
    iterations = 0
    while iterations < max_iter:
        iterations += 1
        if max((_scale_pair(a, b) for a, b in modules), default=0.0) < tol:
            break
    with torch.no_grad():
        after = model(probe)
    change = float((after - before).abs().max())
    scale = float(before.abs().max().clamp_min(1.0))
    if relu6 == "keep" and change > 1e-3 * scale:
        raise ExportError(f"cross-layer equalisation changed the float outputs by {change:.3g}",
                          "the model reads a rescaled tensor outside a module; export without CLE")
    n_relu6 = n6 - sum(isinstance(m, nn.ReLU6) for m in model.modules())
    return EqualizeResult(len(pairs), iterations, folded, n_relu6, change)
