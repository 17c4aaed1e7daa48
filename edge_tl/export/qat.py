"""Quantisation-aware fine-tuning (QAT) of the last blocks and the head, distilled from the float model.

Post-training methods round a model that was never trained to be rounded. QAT trains the last blocks and the head
*through* the rounding the quantisers will apply, so they learn to absorb it (Jacob et al. 2018; Krishnamoorthi
2018). Here it runs on a BN-folded copy (:func:`edge_tl.export.equalize.fold_batchnorm`), so the weights it trains
are the ones both quantisers round:

* every ``Conv2d``/``Linear`` weight except the head's is rounded in the forward pass exactly as ONNX Runtime and
  ai-edge-quantizer round it (per output channel, symmetric, scale ``max|w| / 127``, or / 64 for 7-bit ONNX weights:
  :func:`edge_tl.export.bias_correction.fake_quant_weight`), with a straight-through gradient; the head stays
  float, as both int8 exporters keep the logits layer float by default;
* every activation tensor the int8 graph stores is rounded onto an 8-bit grid over its calibration range: the
  output of each activation, of each convolution not followed by one, and of each container module (a residual
  ``+`` lives there; a container that only passes on an inner output rounds it again on the same grid, a no-op);
* the loss is the KL divergence from the float model's predictions (self-distillation), so no labels are needed
  and what it optimises is what the parity gate measures: agreement with the float model. Each step sees a random
  half of its images mirrored, with the float model's predictions for the mirrored views.

Only the last :data:`BLOCKS` backbone blocks and the head are trained. A quarter of the images is held out: the
simulated int8 model's KL on it is measured before and after, and the trained weights are kept only if it went
down (the record says which). The latent float weights are what the exporters get; they quantise them onto the
same grid, with activation ranges from their own calibration.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize

from edge_tl.export.bias_correction import WEIGHT_QMAX, fake_quant_act, fake_quant_weight, forward_batched
from edge_tl.export.equalize import _trace

BLOCKS = 2  # backbone blocks trained with the head
EPOCHS = 8
LR = 1e-5  # Adam; the weights must move by a fraction of one int8 step
BATCH = 16
HOLDOUT = 0.25  # share of the images kept out of training to decide whether to keep the result
ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.SiLU, nn.Sigmoid, nn.GELU, nn.PReLU,
               nn.LeakyReLU)


@dataclass(frozen=True)
class QatResult:
    blocks: int
    images: int  # trained on
    held_out: int
    epochs: int
    points: int  # activation tensors rounded in the simulation
    kl_before: float  # held-out KL(float || simulated int8), before and after
    kl_after: float
    agreement_before: float  # held-out top-1 agreement of the simulated int8 model with the float one
    agreement_after: float
    kept: bool  # the trained weights were kept (held-out KL went down)


class _WeightFakeQuant(nn.Module):
    """Parametrisation: the weight rounded onto the quantisers' grid, straight-through gradient."""

    def __init__(self, qmax: int) -> None:
        super().__init__()
        self.qmax = qmax

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w + (fake_quant_weight(w, self.qmax) - w).detach()


def _quant_points(model: nn.Module, head: nn.Module, probe: torch.Tensor) -> list[nn.Module]:
    """The modules whose outputs the int8 graph stores (see the module docstring)."""
    leaves, _ = _trace(model, probe)
    readers: dict[int, list[int]] = defaultdict(list)
    for j, leaf in enumerate(leaves):
        for i in leaf.inputs:
            if i >= 0:
                readers[i].append(j)

    def next_real(i: int) -> list[int]:  # readers of leaf i's output, looking through Identity leaves
        out: list[int] = []
        for j in readers.get(i, []):
            out.extend(next_real(j) if isinstance(leaves[j].module, nn.Identity) else [j])
        return out

    points: dict[int, nn.Module] = {}
    for i, leaf in enumerate(leaves):
        m = leaf.module
        if m is head:
            continue
        if isinstance(m, ACTIVATIONS):
            points[id(m)] = m
        elif isinstance(m, (nn.Conv2d, nn.Linear)):
            after = next_real(i)
            if not (len(after) == 1 and isinstance(leaves[after[0]].module, ACTIVATIONS)):
                points[id(m)] = m
    leaf_ids = {id(leaf.module) for leaf in leaves}
    for m in model.modules():
        if m is not model and m is not head and id(m) not in leaf_ids and list(m.children()):
            points[id(m)] = m
    return list(points.values())


class _Simulation:
    """Forward hooks that round the chosen activations on fixed ranges (one range per call of a module)."""

    def __init__(self, model: nn.Module, points: list[nn.Module]) -> None:
        self.model, self.points = model, points
        self.ranges: dict[tuple[int, int], list[float]] = {}
        self._calls: dict[int, int] = defaultdict(int)
        self._mode = "off"
        self._handles = [model.register_forward_pre_hook(lambda *_: self._calls.clear())]
        self._handles += [m.register_forward_hook(self._hook) for m in points]

    def _hook(self, m: nn.Module, _args: tuple[Any, ...], out: Any) -> Any:
        if not isinstance(out, torch.Tensor) or self._mode == "off":
            return None
        key = (id(m), self._calls[id(m)])
        self._calls[id(m)] += 1
        if self._mode == "record":
            lo, hi = float(out.min()), float(out.max())
            r = self.ranges.setdefault(key, [lo, hi])
            r[0], r[1] = min(r[0], lo), max(r[1], hi)
            return None
        lo, hi = self.ranges[key]
        return out + (fake_quant_act(out.detach(), lo, hi) - out).detach()

    def run(self, mode: str, fn: Callable[[], Any]) -> Any:
        self._mode = mode
        try:
            return fn()
        finally:
            self._mode = "off"

    def close(self) -> None:
        for h in self._handles:
            h.remove()


def _kl(teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
    return F.kl_div(F.log_softmax(student, 1), F.log_softmax(teacher, 1), log_target=True, reduction="batchmean")


def _score(teacher: torch.Tensor, student: torch.Tensor) -> tuple[float, float]:
    return float(_kl(teacher, student)), float((teacher.argmax(1) == student.argmax(1)).float().mean())


def qat(model: nn.Module, x: torch.Tensor, *, blocks: int = BLOCKS, epochs: int = EPOCHS, lr: float = LR,
        batch: int = BATCH, seed: int = 0, weight_qmax: int = WEIGHT_QMAX,
        callback: Callable[[int, int, float], None] | None = None) -> QatResult:
    """Fine-tune ``model`` (an :class:`~edge_tl.models.base.EdgeModel`, BN folded) in place on ``x`` (normalised
    NCHW) through simulated int8, weights on ``[-weight_qmax, weight_qmax]``; ``callback(epoch, epochs, mean
    loss)`` after each epoch."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(x), generator=gen)
    n_hold = max(1, round(HOLDOUT * len(x))) if len(x) > 1 else 0
    hold, train = x[order[:n_hold]], x[order[n_hold:]]
    if len(train) == 0:
        train = hold
    mirrored = torch.flip(train, dims=(3,))
    t_train, t_mirror, t_hold = (forward_batched(model, v, 32) for v in (train, mirrored, hold))
    original = copy.deepcopy(model.state_dict())
    head = model.head
    sim = _Simulation(model, _quant_points(model, head, x[:1]))
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and m is not head]
    try:
        sim.run("record", lambda: forward_batched(model, torch.cat([train, mirrored, hold]), 32))
        for m in layers:
            parametrize.register_parametrization(m, "weight", _WeightFakeQuant(weight_qmax))
        before = _score(t_hold, sim.run("quant", lambda: forward_batched(model, hold, 32)))
        model.requires_grad_(False)
        params: list[nn.Parameter] = []
        for part in [*model.blocks[-blocks:], head] if blocks else [head]:
            part.requires_grad_(True)
            params += [p for p in part.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=lr)
        for epoch in range(1, epochs + 1):
            perm = torch.randperm(len(train), generator=gen)
            flip = torch.rand(len(train), generator=gen) < 0.5
            total = 0.0
            for i in range(0, len(train), batch):
                idx = perm[i:i + batch]
                f = flip[idx].view(-1, 1, 1, 1)
                xb = torch.where(f, mirrored[idx], train[idx])
                tb = torch.where(f.view(-1, 1), t_mirror[idx], t_train[idx])
                with torch.enable_grad():
                    loss = _kl(tb, sim.run("quant", lambda xb=xb: model(xb)))
                    opt.zero_grad()
                    loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            if callback is not None:
                callback(epoch, epochs, total / len(train))
        after = _score(t_hold, sim.run("quant", lambda: forward_batched(model, hold, 32)))
    finally:
        for m in layers:
            if parametrize.is_parametrized(m, "weight"):
                parametrize.remove_parametrizations(m, "weight", leave_parametrized=False)
        sim.close()
        model.requires_grad_(False)
    kept = after[0] < before[0]
    if not kept:
        model.load_state_dict(original)
    return QatResult(blocks, len(train), len(hold), epochs, len(sim.points), before[0], after[0], before[1],
                     after[1], kept)
