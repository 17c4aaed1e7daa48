"""``EdgeModel``: the one model type edge-tl trains, exports and attacks.

Every backbone, torchvision's or a tiny test one, is wrapped into the same transfer-learning seam (as timm's
``forward_features`` / ``forward_head`` / ``reset_classifier``):

* ``features``: a module mapping normalised float NCHW images to the pooled ``(N, D)`` vector, exportable alone
  (ONNX) for fast frozen-feature extraction;
* ``head``: always an ``nn.Linear(D, num_classes)``; the optional dropout before it is ``head_drop``;
* ``blocks``: the ordered backbone stages (stem first) that :meth:`EdgeModel.freeze` works on. Together they hold
  every parameter of ``features``.

This module imports torch at the top: import it only where torch is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from edge_tl.errors import ConfigError

if TYPE_CHECKING:
    from edge_tl.card import InputSpec
    from edge_tl.models.weights import ResolvedWeights

_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


class EdgeModel(nn.Module):
    """A backbone (``features``) plus a linear classifier (``head``), with freezing by blocks.

    Args:
        name: the registered backbone name.
        features: module ``(N, 3, H, W) -> (N, feature_dim)``.
        feature_dim: ``D``, the width of the pooled feature vector.
        block_paths: dotted paths (relative to ``features``) of the backbone stages, first to last.
        num_classes: output classes of the head.
        dropout: dropout probability before the head (0 = none).
    """

    def __init__(self, name: str, features: nn.Module, feature_dim: int, block_paths: Sequence[str],
                 num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.backbone_name = name
        self.features = features
        self.feature_dim = int(feature_dim)
        self.block_paths: tuple[str, ...] = tuple(block_paths)
        self.head_drop: nn.Module = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = _new_linear(self.feature_dim, num_classes)
        self._frozen = False
        self.input_spec: InputSpec | None = None  # set by create_model: the preprocessing for its img_size
        self.weights_info: ResolvedWeights | None = None  # set by create_model: None = random init
        for p in self.block_paths:  # fail at construction, not at the first freeze()
            self.features.get_submodule(p)

    # ---- the seam ---------------------------------------------------------------------------------------------
    @property
    def blocks(self) -> list[nn.Module]:
        """The backbone stages, first (stem) to last; ``freeze(except_last=N)`` keeps the last N trainable."""
        return [self.features.get_submodule(p) for p in self.block_paths]

    @property
    def num_classes(self) -> int:
        """Outputs of the head."""
        return int(self.head.out_features)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised NCHW images -> pooled features ``(N, D)``."""
        return self.features(x)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        """Pooled features ``(N, D)`` -> logits ``(N, num_classes)``."""
        return self.head(self.head_drop(f))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised NCHW images -> logits."""
        return self.forward_head(self.forward_features(x))

    def reset_head(self, num_classes: int) -> None:
        """Replace the head by a freshly initialised ``nn.Linear(D, num_classes)`` (trainable)."""
        if int(num_classes) < 1:
            raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
        old = self.head.weight
        self.head = _new_linear(self.feature_dim, int(num_classes)).to(device=old.device, dtype=old.dtype)

    # ---- freezing ---------------------------------------------------------------------------------------------
    def freeze(self, except_last: int = 0) -> None:
        """Freeze every backbone parameter except those of the last ``except_last`` blocks; the head stays trainable.

        BatchNorm layers of frozen blocks are kept in eval mode (running statistics fixed) even when the model is
        put in train mode. ``except_last=len(blocks)`` makes the whole backbone trainable again.
        """
        n = len(self.block_paths)
        if not 0 <= int(except_last) <= n:
            raise ConfigError(f"cannot keep the last {except_last} blocks trainable: {self.backbone_name} has {n}",
                              f"use a number from 0 to {n}")
        self.features.requires_grad_(False)
        for block in self.blocks[n - int(except_last):]:
            block.requires_grad_(True)
        self.head.requires_grad_(True)
        self._frozen = True
        self.train(self.training)

    def unfreeze(self) -> None:
        """Make every parameter trainable again and let every BatchNorm follow train/eval mode."""
        self.requires_grad_(True)
        self._frozen = False
        self.train(self.training)

    def frozen_batchnorms(self) -> list[nn.Module]:
        """BatchNorm layers of the backbone whose parameters are frozen (kept in eval mode)."""
        if not self._frozen:
            return []
        return [m for m in self.features.modules()
                if isinstance(m, _BN_TYPES) and not any(p.requires_grad for p in m.parameters())]

    def train(self, mode: bool = True) -> EdgeModel:
        """As ``nn.Module.train``, but frozen BatchNorm layers stay in eval mode."""
        super().train(mode)
        for m in self.frozen_batchnorms():
            m.eval()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters with ``requires_grad`` (what an optimiser should get)."""
        return [p for p in self.parameters() if p.requires_grad]


class Pooled(nn.Sequential):
    """``body`` followed by global average pooling and flattening: ``(N, C, H, W) -> (N, C)``.

    Extra modules (e.g. MobileNetV3's pre-logits layer) may follow the flatten.
    """

    def __init__(self, body: nn.Module, *after: nn.Module) -> None:
        super().__init__(body, nn.AdaptiveAvgPool2d(1), nn.Flatten(1), *after)


def _new_linear(in_features: int, out_features: int) -> nn.Linear:
    lin = nn.Linear(in_features, out_features)
    nn.init.normal_(lin.weight, 0.0, 0.01)
    nn.init.zeros_(lin.bias)
    return lin


def copy_linear(dst: nn.Linear, src: nn.Linear) -> None:
    """Copy weights of ``src`` into ``dst`` (same shape)."""
    with torch.no_grad():
        dst.weight.copy_(src.weight)
        dst.bias.copy_(src.bias)
