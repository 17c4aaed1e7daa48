"""Finished (model, attack, eps) cells of an attack run, kept on disk as they complete, so an interrupted run
loses only the cell it was in and ``--resume`` skips the finished ones.

A cell holds what the report needs and nothing more: its :class:`~edge_tl.attacks.results.AttackResult`, the
per-image robust and success flags (for the worst case over attacks), and its grid examples. Each is one ``.npz``
written atomically; ``fingerprint.json`` names the inputs (images, labels, settings, models) the cells were made
from, and a resume with other inputs is refused rather than mixed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_tl._io import atomic_path, atomic_write_json
from edge_tl.attacks.results import AttackResult
from edge_tl.errors import ConfigError

CellKey = tuple[str, str, float]
"""(model name, attack name, eps)."""


@dataclass(frozen=True)
class Cell:
    """One finished (model, attack, eps): result, per-image flags over all images, and grid examples."""

    result: AttackResult
    robust: np.ndarray
    success: np.ndarray
    examples: tuple[Any, ...] = ()


def fingerprint(images: np.ndarray, labels: np.ndarray, **config: Any) -> dict[str, Any]:
    """What makes cells comparable: a hash of the images and labels, and the run's settings."""
    h = hashlib.sha256(np.ascontiguousarray(images).tobytes())
    h.update(np.asarray(labels, np.int64).tobytes())
    return {"images_sha256": h.hexdigest(), "n_images": len(images), **config}


class CellStore:
    """A folder of finished cells. ``resume=False`` starts afresh (old cells are removed); ``resume=True`` keeps
    them if they were made from the same inputs, else raises :class:`ConfigError`."""

    def __init__(self, folder: Path, fp: dict[str, Any], resume: bool) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        fp = json.loads(json.dumps(fp))
        meta = self.folder / "fingerprint.json"
        if resume and meta.is_file():
            old = json.loads(meta.read_text())
            changed = sorted(k for k in set(old) | set(fp) if old.get(k) != fp.get(k))
            if changed:
                raise ConfigError(f"the finished cells in {self.folder} were made with other inputs "
                                  f"({', '.join(changed)})", "rerun with the same flags, or without --resume")
        else:
            for f in self.folder.glob("*.npz"):
                f.unlink()
        atomic_write_json(meta, fp)

    def _path(self, key: CellKey) -> Path:
        model, attack, eps = key
        tag = hashlib.sha1(f"{model}\0{attack}\0{eps!r}".encode()).hexdigest()[:16]
        return self.folder / f"{attack}-{eps * 255:g}-{tag}.npz"

    def count(self) -> int:
        return len(list(self.folder.glob("*.npz")))

    def get(self, key: CellKey) -> Cell | None:
        """The finished cell, or None."""
        from edge_tl.attacks.engine import Example

        p = self._path(key)
        if not p.is_file():
            return None
        with np.load(p, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            examples = tuple(Example(**e, original=z[f"orig{i}"], adversarial=z[f"adv{i}"])
                             for i, e in enumerate(meta["examples"]))
            return Cell(AttackResult(**meta["result"]), z["robust"].copy(), z["success"].copy(), examples)

    def put(self, key: CellKey, cell: Cell) -> None:
        """Write the cell atomically."""
        arrays: dict[str, np.ndarray] = {"robust": cell.robust, "success": cell.success}
        ex_meta = []
        for i, e in enumerate(cell.examples):
            arrays[f"orig{i}"], arrays[f"adv{i}"] = e.original, e.adversarial
            ex_meta.append({k: v for k, v in e.__dict__.items() if k not in ("original", "adversarial")})
        meta = json.dumps({"result": cell.result.to_json(), "examples": ex_meta})
        with atomic_path(self._path(key)) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, meta=np.array(meta), **arrays)
