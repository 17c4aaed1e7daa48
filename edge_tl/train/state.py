"""``train_state.pt``: what ``--resume`` needs to continue a run exactly where it stopped.

Written atomically after every epoch (so Ctrl-C or a kill leaves the last finished epoch resumable) and read
with ``torch.load(weights_only=True)``: model and best weights, optimiser, schedule, grad scaler, loop
bookkeeping, the configuration and the RNG states (torch, CUDA, Python, NumPy).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_tl._io import atomic_path
from edge_tl.errors import CheckpointError

if TYPE_CHECKING:
    import torch

STATE_FILE = "train_state.pt"
FORMAT = "edge-tl-train-state"
VERSION = 1


def rng_state() -> dict[str, Any]:
    """The global RNG states as weights-only-loadable values."""
    import torch

    name, keys, pos, has_gauss, cached = np.random.get_state()
    out: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": [list(x) if isinstance(x, tuple) else x for x in random.getstate()],
        "numpy": {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    import torch

    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(run_dir: Path, payload: dict[str, Any]) -> Path:
    """Write ``train_state.pt`` in ``run_dir`` atomically."""
    import torch

    path = Path(run_dir) / STATE_FILE
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "version": VERSION, **payload, "rng": rng_state()}, tmp)
    return path


def load_state(run_dir: Path) -> dict[str, Any]:
    """Read and validate ``train_state.pt`` of ``run_dir``; any defect -> :class:`CheckpointError`."""
    import torch

    from edge_tl.models.checkpoint import LOAD_ERRORS

    path = Path(run_dir) / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"nothing to resume: {path} does not exist",
                              "train without --resume, or pass --out of an interrupted run")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except LOAD_ERRORS as exc:
        from edge_tl.models.checkpoint import refusal

        raise refusal(path, exc, "is corrupt", "delete it and train without --resume") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("version"), int):
        raise CheckpointError(f"{path} is not an edge-tl training state", "delete it and train without --resume")
    if data["version"] > VERSION:
        raise CheckpointError(f"{path} was written by a newer edge-tl", "upgrade edge-tl")
    for key in ("config", "classes", "model", "optimizer", "scheduler", "loop"):
        if key not in data:
            raise CheckpointError(f"{path} lacks '{key}'", "delete it and train without --resume")
    return data


def tensors_to_cpu(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A detached CPU copy of a state dict."""
    return {k: v.detach().to("cpu").clone() for k, v in sd.items()}
