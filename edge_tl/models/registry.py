"""The backbone registry: every model is a function registered with :func:`register_backbone`.

Registration stores a :class:`BackboneSpec` (names, weights, preprocessing, licence) and a builder; nothing here
imports torch, so listing names for ``click.Choice`` and validation stays instant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edge_tl.card import InputSpec
from edge_tl.registry import Registry

if TYPE_CHECKING:
    from edge_tl.models.base import EdgeModel


@dataclass(frozen=True)
class WeightSource:
    """One pretrained weight file and every place it may be found.

    ``file_name`` is the name torchvision uses in ``$TORCH_HOME/hub/checkpoints``; ``sha256`` is the full hash
    or a prefix of at least 8 hex digits; ``package``/``package_path`` name a pip package that ships the file
    (``package_path`` relative to the package's import folder); ``key_map`` names a converter that maps the
    file's keys onto the builder's module.
    """

    file_name: str
    sha256: str
    url: str | None
    licence: str
    package: str | None = None
    package_path: str | None = None
    pip_name: str | None = None
    key_map: str | None = None
    num_classes: int = 1000


@dataclass(frozen=True)
class BackboneSpec:
    """What edge-tl knows about one backbone: builder, weights, preprocessing, transfer-learning seam."""

    name: str
    builder: Callable[..., EdgeModel]
    weights: WeightSource | None
    input_size: int = 224
    resize_size: int = 256
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"
    licence: str = "BSD-3-Clause"
    test_only: bool = False
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def input_spec(self, img_size: int | None = None) -> InputSpec:
        """The preprocessing for ``img_size`` (default: the weights' own), keeping the resize/crop ratio."""
        size = img_size or self.input_size
        resize = size if self.resize_size == self.input_size else round(size * self.resize_size / self.input_size)
        return InputSpec(size=size, resize=resize, mean=self.mean, std=self.std, interpolation=self.interpolation)


def _ensure_loaded() -> None:
    # The catalogue module registers every built-in backbone on import (builders import torch lazily).
    from edge_tl.models import catalogue  # noqa: F401


BACKBONES: Registry[BackboneSpec] = Registry("backbone", load=_ensure_loaded)


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Add ``spec`` to the registry; a duplicate name is a programming error and raises."""
    return BACKBONES.add(spec.name, spec)


def list_backbones(include_test: bool = False) -> list[str]:
    """Registered backbone names (tiny test backbones only with ``include_test``)."""
    return sorted(n for n, s in BACKBONES.items() if include_test or not s.test_only)


def get_spec(name: str) -> BackboneSpec:
    """The spec of backbone ``name``; unknown names raise with the closest match and the valid ones."""
    return BACKBONES.get(name)
