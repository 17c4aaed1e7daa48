"""The epoch loop shared by every mode: AdamW, cosine schedule with warm-up, label smoothing, early stopping on
validation accuracy with the best weights kept, a resumable state after every epoch.

A :class:`Task` knows how to run one training epoch and one validation pass over its data (cached features or
images); :func:`fit` does the rest. Everything that decides the result (shuffling, augmentation views) is drawn
from generators seeded by ``(seed, epoch)``, so a resumed run follows the same path as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch

    from edge_tl.train.ddp import Dist


@dataclass
class EpochStats:
    """Sums over one pass: loss (summed per image), correct predictions, images, wall seconds."""

    loss: float = 0.0
    correct: float = 0.0
    images: float = 0.0
    seconds: float = 0.0

    @property
    def mean_loss(self) -> float:
        return self.loss / self.images if self.images else float("nan")

    @property
    def accuracy(self) -> float:
        return self.correct / self.images if self.images else float("nan")


class Task(Protocol):
    """One kind of training data (features or images) behind a common interface."""

    module: torch.nn.Module  # what is optimised (possibly DDP-wrapped)
    batch_size: int

    def epoch_images(self) -> int: ...

    def train_epoch(self, epoch: int, step: Callable[[torch.Tensor], None],
                    progress: Callable[[int], None]) -> EpochStats: ...

    def validate(self) -> EpochStats: ...


@dataclass
class LoopState:
    """Everything :func:`fit` needs to continue: completed epochs, early-stopping bookkeeping, history."""

    epoch: int = 0
    best_acc: float = -1.0
    best_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped_early: bool = False
    history: list[dict[str, float]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LoopState:
        return cls(**d)


def cosine_with_warmup(optimizer: torch.optim.Optimizer, total_steps: int,
                       warmup_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up for ``warmup_steps``, then cosine decay to 1 % of the base learning rate."""
    import torch

    total = max(1, total_steps)
    warm = min(max(0, warmup_steps), total - 1)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        t = min(1.0, (step - warm) / max(1, total - warm))
        return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * t))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def make_optimizer(groups: list[dict[str, Any]], weight_decay: float) -> torch.optim.AdamW:
    """AdamW over parameter groups (each with its own ``lr``); biases and norms get no weight decay."""
    import torch

    out = []
    for g in groups:
        decay = [p for p in g["params"] if p.requires_grad and p.ndim > 1]
        no_decay = [p for p in g["params"] if p.requires_grad and p.ndim <= 1]
        out += [{"params": decay, "lr": g["lr"], "weight_decay": weight_decay},
                {"params": no_decay, "lr": g["lr"], "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in out if g["params"]])


@dataclass
class Trainer:
    """Optimiser, schedule, grad scaler and the loss of one run."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    max_grad_norm: float = 5.0

    def step(self, loss: torch.Tensor, params: list[torch.nn.Parameter]) -> None:
        """Backward, (unscale), clip, optimiser step, schedule step."""
        import torch

        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()


def fit(task: Task, trainer: Trainer, state: LoopState, *, epochs: int, patience: int, dist: Dist,
        device: torch.device, keep_best: Callable[[], None], save_state: Callable[[LoopState], None],
        on_epoch: Callable[[int, dict[str, float]], None] | None = None,
        progress: Callable[[int, int], AbstractContextManager[Callable[[int], None]]] | None = None) -> LoopState:
    """Train from ``state.epoch`` to ``epochs`` (or until ``patience`` epochs without a better val accuracy).

    ``progress(epoch, images)`` returns a context (a :meth:`edge_tl.progress.Reporter.task`) that yields the
    per-batch ``advance(n_images)`` callback; it is left when the epoch's training pass ends.
    ``keep_best`` snapshots the current weights as the best; ``save_state`` persists a resumable state (called
    on every rank; it writes on rank 0 only); ``on_epoch(epoch, row)`` runs after the state is saved (a
    KeyboardInterrupt raised there, or anywhere, leaves the last saved state resumable).
    """
    from edge_tl.train import ddp

    params = [p for p in task.module.parameters() if p.requires_grad]
    while state.epoch < epochs and not state.stopped_early:
        epoch = state.epoch + 1
        bar = progress(epoch, task.epoch_images()) if progress else contextlib.nullcontext(lambda n: None)
        t0 = time.perf_counter()
        task.module.train()
        with bar as tick:
            tr = task.train_epoch(epoch, lambda loss: trainer.step(loss, params), tick)
        tr_sums = ddp.all_sum(dist, [tr.loss, tr.correct, tr.images], device)
        task.module.eval()
        va = task.validate()
        va_sums = ddp.all_sum(dist, [va.loss, va.correct, va.images], device)
        row = {
            "epoch": epoch,
            "train_loss": tr_sums[0] / max(tr_sums[2], 1), "train_acc": tr_sums[1] / max(tr_sums[2], 1),
            "val_loss": va_sums[0] / max(va_sums[2], 1), "val_acc": va_sums[1] / max(va_sums[2], 1),
            "lr": max(float(g["lr"]) for g in trainer.optimizer.param_groups), "seconds": time.perf_counter() - t0,
            "images_per_s": tr_sums[2] / max(time.perf_counter() - t0, 1e-9), "train_images": int(tr_sums[2]),
        }
        better = (row["val_acc"] > state.best_acc + 1e-9
                  or (abs(row["val_acc"] - state.best_acc) <= 1e-9 and row["val_loss"] < state.best_loss))
        if better:
            state.best_acc, state.best_loss, state.best_epoch, state.bad_epochs = (
                row["val_acc"], row["val_loss"], epoch, 0)
            keep_best()
        else:
            state.bad_epochs += 1
        state.history.append(row)
        state.epoch = epoch
        state.stopped_early = state.bad_epochs >= patience and epoch < epochs
        save_state(state)
        if on_epoch:
            on_epoch(epoch, row)
    return state


def steps_per_epoch(task: Task) -> int:
    """Optimiser steps in one epoch of ``task`` on this rank."""
    return math.ceil(task.epoch_images() / task.batch_size)
