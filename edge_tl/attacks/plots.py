"""PNG plots of an attack run: the robustness curve and the image grid.

Figures are built with matplotlib's object-oriented API (:class:`matplotlib.figure.Figure`, ``fig.savefig``),
which renders without a backend: nothing here selects one or touches pyplot's global state."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge_tl._io import atomic_path
from edge_tl.attacks.engine import Example
from edge_tl.attacks.results import WORST_CASE, AttackReport


def _figure(figsize: tuple[float, float]):
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def robustness_curve(report: AttackReport, path: Path) -> Path:
    """Robust accuracy against eps (L-inf in /255 units, or L2), one panel per attack and one for the worst
    case over attacks, one line per model; eps 0 is the clean accuracy."""
    attacks = sorted(dict.fromkeys(r.attack for r in report.results), key=lambda a: a == WORST_CASE)
    l2 = report.config.get("norm") == "l2"
    scale = 1.0 if l2 else 255.0
    if not attacks:
        attacks = ["(none)"]
    fig = _figure((4.2 * len(attacks), 3.6))
    axes = fig.subplots(1, len(attacks), squeeze=False, sharey=True)
    for ax, attack in zip(axes[0], attacks):
        for model in report.models():
            rows = report.select(model, attack)
            if not rows:
                continue
            xs = [0.0] + [r.eps * scale for r in rows]
            ys = [100 * report.clean_accuracy[model]] + [100 * r.robust_accuracy for r in rows]
            ax.plot(xs, ys, marker="o", label=model)
        ax.set_title(attack)
        ax.set_xlabel("eps (L2, [0, 1] pixels)" if l2 else "eps (L-inf, /255)")
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("robust accuracy (%)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:
        h, lab = ax.get_legend_handles_labels()
        handles += [x for x, n in zip(h, lab) if n not in labels]
        labels += [n for n in lab if n not in labels]
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=8, frameon=False)
    target = report.config.get("target_class")
    fig.suptitle("robustness" + (f" (targeted: {target})" if target else ""), fontsize=11)
    fig.tight_layout(rect=(0, 0.1 if handles else 0, 1, 1))
    return _save(fig, path)


def image_grid(examples: Sequence[Example], classes: Sequence[str], path: Path, magnify: float | None = None) -> Path:
    """One row per example: source image, perturbation (magnified around grey), result; titles give the
    predicted class and confidence of each (the true class for the source, the source's class for the
    result)."""
    rows = max(len(examples), 1)
    fig = _figure((7.5, 2.6 * rows))
    axes = fig.subplots(rows, 3, squeeze=False)
    for ax_row, ex in zip(axes, examples):
        delta = ex.adversarial.astype(np.float32) - ex.original.astype(np.float32)
        peak = float(np.abs(delta).max()) or 1.0
        gain = magnify or 127.0 / peak
        ax_row[0].imshow(ex.original)
        ax_row[0].set_title(f"{classes[ex.clean_pred]} {ex.clean_conf:.0%}\n(true {classes[ex.label]})", fontsize=8)
        ax_row[1].imshow(np.clip(127.5 + gain * delta, 0, 255).astype(np.uint8))
        budget = f"L2 {ex.eps:g}" if ex.norm == "l2" else f"eps {ex.eps * 255:g}/255"
        ax_row[1].set_title(f"{ex.model} / {ex.attack}\n{budget}, perturbation x{gain:.0f}", fontsize=8)
        ax_row[2].imshow(ex.adversarial)
        colour = "red" if ex.adv_pred != ex.label else "black"
        ax_row[2].set_title(f"{classes[ex.adv_pred]} {ex.adv_conf:.0%}\n(was {classes[ex.clean_pred]} "
                            f"{ex.clean_conf:.0%})", fontsize=8, color=colour)
    for ax in axes.ravel():
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return Path(path)
