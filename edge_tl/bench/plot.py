"""Latency against accuracy, one point per measured row, with the Pareto front and the recommendation."""

from __future__ import annotations

from pathlib import Path

from edge_tl._io import atomic_path
from edge_tl.bench.results import BenchResult, BenchRow, pareto_front
from edge_tl.errors import DataError

_MARKERS = {"pytorch": "s", "onnx": "o", "tflite": "^"}


def plot_latency_accuracy(result: BenchResult, path: Path) -> Path:
    """Write a PNG of p50 latency (log x) against top-1 accuracy to ``path`` (atomically); return ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _fastest_per_artifact(result)
    if not rows:
        raise DataError("nothing to plot: no artefact was measured with an accuracy", "check the error rows")
    points = [(r.p50, r.top1) for r in rows]
    front = pareto_front(points)
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    for fmt, marker in _MARKERS.items():
        sel = [r for r in rows if r.format == fmt]
        if sel:
            ax.scatter([r.p50 for r in sel], [r.top1 for r in sel], marker=marker, s=45, label=fmt, zorder=3)
    fx, fy = [points[i][0] for i in front], [points[i][1] for i in front]
    ax.step(fx, fy, where="post", color="0.4", linestyle="--", linewidth=1, label="Pareto front", zorder=2)
    ax.scatter(fx, fy, facecolors="none", edgecolors="k", s=120, linewidths=1, zorder=4)
    for i, r in enumerate(sorted(rows, key=lambda r: r.p50)):  # staggered so equal accuracies stay legible
        ax.annotate(f"{r.name} {r.threads}t", (r.p50, r.top1), textcoords="offset points",
                    xytext=(4, 5 + 9 * (i % 3)), fontsize=7)
    best = result.recommendation
    if best is not None and best.p50 is not None and best.top1 is not None:
        ax.scatter([best.p50], [best.top1], marker="*", s=260, color="gold", edgecolors="k", zorder=5,
                   label="recommended")
    if result.reference_top1 is not None:
        ax.axhline(result.reference_top1 - result.settings.max_drop, color="tab:red", linewidth=0.8, linestyle=":",
                   label=f"accuracy budget (-{result.settings.max_drop:g} pt)")
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda v, _pos: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel(f"p50 latency, ms (batch {result.settings.batch}, log scale)")
    ax.set_ylabel("top-1 accuracy, %")
    ax.set_title(f"Latency vs accuracy ({result.settings.profile}; each artefact at its fastest thread count)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)


def _fastest_per_artifact(result: BenchResult) -> list[BenchRow]:
    """One point per artefact: its measured row with the lowest p50 (the thread count a user would pick)."""
    best: dict[str, BenchRow] = {}
    for r in result.rows:
        if r.ok and r.p50 is not None and r.top1 is not None and (r.path not in best or r.p50 < best[r.path].p50):
            best[r.path] = r
    return list(best.values())
