"""Run checkpoints: ``model.pt`` = state dict + model card, loadable with ``torch.load(weights_only=True)``.

Layout of the file (a plain dict, nothing pickled beyond tensors and JSON-like values)::

    {"format": "edge-tl-checkpoint", "version": 1, "state_dict": {...}, "card": card.to_json(), "extra": {...}}

:func:`load_checkpoint` rebuilds the model from the card alone (``create_model(card.backbone,
num_classes=card.num_classes, weights="none", img_size=card.input.size)``) and loads the state dict, so an
artefact never needs the run folder to be understood. Every defect raises :class:`CheckpointError`.
"""

from __future__ import annotations

import pickle
import struct
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_tl._io import atomic_path
from edge_tl.card import ModelCard
from edge_tl.errors import CardError, CheckpointError, EdgeTLError

if TYPE_CHECKING:
    import torch

    from edge_tl.models.base import EdgeModel

# What torch.load can raise on a file that is not a (safe) torch checkpoint: caught, reported in one line.
LOAD_ERRORS: tuple[type[BaseException], ...] = (
    pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, AttributeError, ImportError, TypeError,
    KeyError, IndexError, struct.error, zipfile.BadZipFile)
FORMAT = "edge-tl-checkpoint"
VERSION = 1
_HINT = "re-run `edge-tl train` to write a fresh checkpoint"


def refusal(path: Path, exc: BaseException, what: str, hint: str) -> CheckpointError:
    """The error for a file ``torch.load(weights_only=True)`` rejected. A pickle holding anything but tensors
    and plain values is named as possibly malicious, and torch's own advice (to retry with
    ``weights_only=False``, i.e. to run the pickle) is deliberately not repeated."""
    text = str(exc)
    if "Unsupported global" in text:  # the pickle names Python callables: refuse, and say why
        return CheckpointError(f"refused to load {path}: it holds Python objects other than tensors and plain "
                               "values, which can run code when unpickled (it may be malicious)",
                               "never load it with weights_only=False; retrain, or get the file from a trusted source")
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    if "weights_only" in text or "Weights only" in text:  # never relay torch's advice to unpickle unsafely
        first = "not a tensor-only file torch.load(weights_only=True) can read"
    return CheckpointError(f"{path} {what} ({first[:200]})", hint)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The bare model inside a DistributedDataParallel / DataParallel / compiled wrapper."""
    import torch

    while True:
        inner = getattr(model, "module", None)
        if inner is None:
            inner = getattr(model, "_orig_mod", None)
        if not isinstance(inner, torch.nn.Module):
            return model
        model = inner


def cpu_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached, contiguous CPU copy of the (unwrapped) model's state dict."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in unwrap(model).state_dict().items()}


def save_checkpoint(path: str | Path, model: torch.nn.Module, card: ModelCard,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights and ``card`` to ``path`` atomically (temp file + rename); return ``path``.

    ``extra`` holds JSON-like values or tensors only (it must survive ``weights_only=True``).
    """
    import torch

    payload: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "state_dict": cpu_state_dict(model),
        "card": card.to_json(),
    }
    if extra:
        payload["extra"] = dict(extra)
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and validate the raw checkpoint dict (``weights_only=True``); any defect -> :class:`CheckpointError`."""
    import torch

    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist", "pass a run folder or its model.pt")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except LOAD_ERRORS as exc:
        raise refusal(path, exc, "is not a readable edge-tl checkpoint", _HINT) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an edge-tl checkpoint (no '{FORMAT}' marker)", _HINT)
    version = payload.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(f"{path} has checkpoint version {version!r}; this edge-tl reads <= {VERSION}",
                              "upgrade edge-tl")
    state = payload.get("state_dict")
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CheckpointError(f"{path} has no valid state dict", _HINT)
    if not isinstance(payload.get("card"), dict):
        raise CheckpointError(f"{path} has no model card", _HINT)
    return payload


def read_card(path: str | Path) -> ModelCard:
    """The model card stored in a checkpoint, without building the model."""
    payload = read_checkpoint(path)
    return _card_of(payload, Path(path))


def _card_of(payload: dict[str, Any], path: Path) -> ModelCard:
    try:
        return ModelCard.from_json(payload["card"])
    except CardError as exc:
        raise CheckpointError(f"{path}: {exc.message}", _HINT) from None


def load_checkpoint(path: str | Path) -> tuple[EdgeModel, ModelCard]:
    """Rebuild the model described by the checkpoint's card and load its weights (CPU, eval mode)."""
    from edge_tl.models import create_model

    path = Path(path)
    payload = read_checkpoint(path)
    card = _card_of(payload, path)
    try:
        model = create_model(card.backbone, num_classes=card.num_classes, weights="none",
                             img_size=card.input.size)
    except EdgeTLError as exc:
        raise CheckpointError(f"{path}: cannot rebuild backbone '{card.backbone}': {exc.message}", exc.hint) from None
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(s.strip() for s in first[:2])[:300]
        raise CheckpointError(f"{path}: weights do not fit backbone '{card.backbone}' ({detail})", _HINT) from None
    model.eval()
    return model, card
