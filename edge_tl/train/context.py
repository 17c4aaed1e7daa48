"""What the training modes share: the :class:`RunContext` a mode runs in, the :class:`Outcome` it returns, and
the model's input spec. Imports no other training module."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_tl.errors import CheckpointError

if TYPE_CHECKING:
    import torch

    from edge_tl.card import InputSpec
    from edge_tl.models.base import EdgeModel
    from edge_tl.progress import Reporter
    from edge_tl.train.config import TrainConfig
    from edge_tl.train.data import Prepared
    from edge_tl.train.ddp import Dist
    from edge_tl.train.device import Precision
    from edge_tl.train.loop import LoopState


@dataclass
class RunContext:
    """Everything a mode needs: resolved config, devices, where progress goes, run folder, data, model, resumed
    state. ``reporter`` is never None (silent on non-main ranks); ``tasks`` is where counted work goes (silent when
    the config turns progress off or on non-main ranks)."""

    cfg: TrainConfig
    dist: Dist
    device: torch.device
    precision: Precision
    reporter: Reporter
    run_dir: Path
    prep: Prepared
    model: EdgeModel
    saved: dict[str, Any] | None = None
    on_epoch: Callable[[int, dict[str, float]], None] | None = None
    extra_state: dict[str, Any] = field(default_factory=dict)

    @property
    def tasks(self) -> Reporter:
        from edge_tl import progress

        return progress.of(self.reporter, tasks=self.cfg.progress)


@dataclass
class Outcome:
    """What a mode returns: the loop state, test logits and labels (CPU), extra metrics."""

    loop: LoopState
    test_logits: torch.Tensor
    test_labels: torch.Tensor
    metrics: dict[str, Any] = field(default_factory=dict)
    l2_path: list[dict[str, float]] | None = None  # features mode: cross-validation per L2 strength


def input_spec(model: EdgeModel) -> InputSpec:
    """The preprocessing ``create_model`` attached to ``model``."""
    spec = getattr(model, "input_spec", None)
    if spec is None:
        raise CheckpointError(f"model {model.backbone_name} carries no input spec", "build it with create_model")
    return spec
