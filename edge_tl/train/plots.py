"""PNG plots of a run: loss/accuracy curves per epoch and the confusion matrix.

Figures are built with matplotlib's object-oriented API (:class:`matplotlib.figure.Figure`, ``fig.savefig``),
which needs no backend: plotting never changes the caller's ``matplotlib`` backend or opens a window.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_tl._io import atomic_path


def _figure(figsize: tuple[float, float], dpi: int = 100) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, dpi=dpi)


def plot_curves(history: Sequence[dict[str, float]], path: Path, title: str = "") -> Path:
    """Train/val loss (left) and accuracy (right) per epoch; the best val epoch marked."""
    ep = [r["epoch"] for r in history]
    fig = _figure((10, 4))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(ep, [r["train_loss"] for r in history], "o-", label="train")
    ax1.plot(ep, [r["val_loss"] for r in history], "o-", label="val")
    ax1.set(xlabel="epoch", ylabel="loss", title="loss")
    ax2.plot(ep, [100 * r["train_acc"] for r in history], "o-", label="train")
    ax2.plot(ep, [100 * r["val_acc"] for r in history], "o-", label="val")
    if history:
        best = max(history, key=lambda r: (r["val_acc"], -r["val_loss"]))
        ax2.axvline(best["epoch"], color="grey", ls="--", lw=1, label=f"best (epoch {best['epoch']})")
    ax2.set(xlabel="epoch", ylabel="accuracy %", title="accuracy")
    return _save_pair(fig, (ax1, ax2), title, path)


def plot_l2_path(path_rows: Sequence[dict[str, float]], chosen: float, path: Path, title: str = "") -> Path:
    """Cross-validated loss (left) and accuracy (right) of the head per L2 strength; the chosen one marked."""
    l2 = [r["l2"] for r in path_rows]
    fig = _figure((10, 4))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(l2, [r["cv_loss"] for r in path_rows], "o-", label="held-out folds")
    ax1.set(xlabel="L2 strength", ylabel="cross-entropy", title="cross-validated loss", xscale="log")
    ax2.plot(l2, [100 * r["cv_acc"] for r in path_rows], "o-", label="held-out folds")
    ax2.set(xlabel="L2 strength", ylabel="accuracy %", title="cross-validated accuracy", xscale="log")
    for ax in (ax1, ax2):
        ax.axvline(chosen, color="grey", ls="--", lw=1, label=f"chosen ({chosen:.1e})")
    return _save_pair(fig, (ax1, ax2), title, path)


def plot_confusion(matrix: np.ndarray, classes: Sequence[str], path: Path, title: str = "") -> Path:
    """Row-normalised confusion matrix (true class per row) with counts in the cells."""
    m = np.asarray(matrix, dtype=np.float64)
    rows = m.sum(axis=1, keepdims=True)
    norm = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    n = len(classes)
    side = min(4 + 0.35 * n, 22)
    fig = _figure((side, side * 0.85))
    ax = fig.subplots()
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels=list(classes), rotation=90 if n > 6 else 45, ha="right" if n <= 6 else "center")
    ax.set_yticks(range(n), labels=list(classes))
    ax.set(xlabel="predicted", ylabel="true", title=title or "confusion matrix")
    if n <= 40:
        for i in range(n):
            for j in range(n):
                if m[i, j]:
                    ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=8 if n > 12 else 10,
                            color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return _save(fig, path)


def _save_pair(fig: Any, axes: tuple[Any, Any], title: str, path: Path) -> Path:
    """Grid and legend on both panels, the figure's title, then save."""
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)
