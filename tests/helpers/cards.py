"""The one model-card builder for tests: ``card(fmt="onnx", classes=("cat", "dog"), **fields)``."""

from __future__ import annotations

from typing import Any

from edge_tl.card import InputSpec, ModelCard
from edge_tl.records import ParityResult, QuantRecipe

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


def parity(**fields: Any) -> ParityResult:
    """A passing parity result (one of 100 images) with ``fields`` changed, e.g. ``saturated=0.4``."""
    base: dict[str, Any] = {"variant": "model.onnx", "format": "onnx", "quantize": "none", "n": 100,
                            "agreement": 1.0, "accuracy": 0.9, "reference_accuracy": 0.9, "drop": 0.0,
                            "max_dlogit": 0.0, "saturated": 0.0, "kl": 0.0, "max_dprob": 0.0, "ece": None,
                            "ece_reference": None, "resolution": 1.0}
    return ParityResult(**{**base, **fields})


def parity_json(**fields: Any) -> dict[str, Any]:
    """The same parity result as the JSON dict a card carries."""
    return parity(**fields).to_json()


def recipe(mode: str = "int8", **fields: Any) -> QuantRecipe:
    """A quantisation record of ``mode`` with ``fields`` set."""
    fields.setdefault("recipe", f"test {mode}")
    return QuantRecipe(mode=mode, **fields)
