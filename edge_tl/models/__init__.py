"""Backbones: registry, ``create_model`` (the only way to build one), weights and ImageNet names.

Importing this package does not import torch; ``create_model`` does.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from edge_tl.errors import ConfigError, WeightsError
from edge_tl.models.imagenet import imagenet_classes
from edge_tl.models.registry import BackboneSpec, WeightSource, get_spec, list_backbones, register_backbone
from edge_tl.models.weights import DEFAULT, ResolvedWeights, resolve_weights

if TYPE_CHECKING:
    from edge_tl.models.base import EdgeModel
    from edge_tl.progress import Reporter

__all__ = [
    "BackboneSpec",
    "ResolvedWeights",
    "WeightSource",
    "create_model",
    "get_spec",
    "imagenet_classes",
    "list_backbones",
    "register_backbone",
    "resolve_weights",
    "weights_label",
]

MIN_IMG_SIZE = 32


def create_model(name: str, *, num_classes: int | None = None, weights: str | os.PathLike[str] = DEFAULT,
                 img_size: int | None = None, reporter: Reporter | None = None) -> EdgeModel:
    """Build backbone ``name`` as an :class:`~edge_tl.models.base.EdgeModel` (in eval mode).

    Args:
        name: a registered backbone (see :func:`list_backbones`).
        num_classes: classes of a new, freshly initialised head; None keeps the weights' own head (ImageNet's
            1000 classes for pretrained backbones).
        weights: ``"default"`` (pretrained via the resolver; random init for test backbones, which have none),
            ``"none"`` (random init, explicitly) or the path of a state dict (in the source layout, e.g. a
            torchvision file, or in EdgeModel's own ``features.*``/``head.*`` layout).
        img_size: the input size the model will see (only validated here: every backbone pools adaptively);
            ``model.input_spec`` holds the matching preprocessing.
        reporter: where a weights download reports its progress (:class:`edge_tl.progress.Reporter`).

    Raises:
        UnknownNameError, WeightsError, ConfigError.
    """
    spec = get_spec(name)
    if img_size is not None and img_size < MIN_IMG_SIZE:
        raise ConfigError(f"image size {img_size} is too small", f"use --img-size {MIN_IMG_SIZE} or more")
    if num_classes is not None and num_classes < 1:
        raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
    resolved = resolve_weights(spec, weights, reporter=reporter)
    model = _build(spec, resolved)
    if num_classes is not None and num_classes != model.num_classes:
        model.reset_head(num_classes)
    model.input_spec = spec.input_spec(img_size)
    model.weights_info = resolved
    return model.eval()


def weights_label(spec: BackboneSpec, resolved: ResolvedWeights | None) -> str:
    """What goes into a model card's ``weights`` field: ``"random"`` or ``"<file>@<sha256 prefix>"``."""
    if resolved is None:
        return "random"
    return f"{resolved.path.name}@{resolved.sha256[:12]}"


def _build(spec: BackboneSpec, resolved: ResolvedWeights | None) -> EdgeModel:
    from edge_tl.models.keymaps import KEY_MAPS, needs_key_map
    from edge_tl.models.weights import load_state_dict_file

    if resolved is None:
        return spec.builder(None)
    sd = load_state_dict_file(resolved.path)
    if all(k.startswith(("features.", "head.")) for k in sd):  # already in EdgeModel's layout
        model = spec.builder(None)
        head = sd.get("head.weight")
        if head is not None and head.ndim == 2 and head.shape[0] != model.num_classes:
            model.reset_head(int(head.shape[0]))
        _load(model, sd, spec, resolved)
        return model
    key_map = spec.weights.key_map if spec.weights else None
    if key_map and needs_key_map(key_map, sd):
        try:
            sd = KEY_MAPS[key_map](sd)
        except KeyError as exc:
            raise WeightsError(f"{resolved.path} does not fit {spec.name}: unexpected tensor {exc}",
                               "give the weight file of this backbone") from None
    try:
        return spec.builder(sd)
    except RuntimeError as exc:
        raise _mismatch(spec, resolved, exc) from None


def _load(model: Any, sd: dict[str, Any], spec: BackboneSpec, resolved: ResolvedWeights) -> None:
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise _mismatch(spec, resolved, exc) from None


def _mismatch(spec: BackboneSpec, resolved: ResolvedWeights, exc: RuntimeError) -> WeightsError:
    detail = " ".join(str(exc).split())[:300]
    return WeightsError(f"{resolved.path} does not fit backbone {spec.name}: {detail}",
                        "give the weight file of this backbone, or choose the --backbone it was trained with")
