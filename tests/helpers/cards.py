"""The one model-card builder for tests: ``card(fmt="onnx", classes=("cat", "dog"), **fields)``."""

from __future__ import annotations

from typing import Any

from edge_tl.card import InputSpec, ModelCard

SPEC = InputSpec(size=32, resize=36, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def card(fmt: str = "pytorch", classes: tuple[str, ...] = ("cat", "dog"), *, spec: InputSpec = SPEC,
         backbone: str = "tiny_cnn", **fields: Any) -> ModelCard:
    """A valid card of format ``fmt``; any other :class:`ModelCard` field can be set by keyword."""
    fields.setdefault("input", spec)
    fields.setdefault("weights", "none")
    return ModelCard(classes=tuple(classes), backbone=backbone, format=fmt, **fields)


def card_json(fmt: str = "pytorch", classes: tuple[str, ...] = ("cat", "dog"), **fields: Any) -> dict[str, Any]:
    """The same card as the JSON dict a file carries."""
    return card(fmt, classes, **fields).to_json()
