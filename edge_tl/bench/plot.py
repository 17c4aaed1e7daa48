"""Latency against accuracy, one point per measured row, with the Pareto front and the recommendation."""

from __future__ import annotations

from pathlib import Path

from edge_tl._io import atomic_path
from edge_tl.bench.results import BenchResult, BenchRow, measured, pareto_front
from edge_tl.errors import DataError

_MARKERS = {"pytorch": "s", "onnx": "o", "tflite": "^", "openvino": "D"}
_RUNTIME_COLOURS = {"pytorch": "tab:gray", "onnxruntime": "tab:blue", "litert": "tab:orange", "openvino": "tab:purple"}


def plot_latency_accuracy(result: BenchResult, path: Path) -> Path:
    """Write a PNG of p50 latency (log x) against top-1 accuracy to ``path`` (atomically); return ``path``."""
    from matplotlib.figure import Figure

    points = _fastest_per_artifact(result)
    if not points:
        raise DataError("nothing to plot: no artefact was measured with an accuracy", "check the error rows")
    front = pareto_front([(p50, top1) for _, p50, top1 in points])
    fig = Figure(figsize=(8, 5), dpi=120)  # no pyplot: no backend set, no global figure state
    ax = fig.subplots()
    for (fmt, marker), (rt, colour) in ((f, c) for f in _MARKERS.items() for c in _RUNTIME_COLOURS.items()):
        sel = [(p50, top1) for r, p50, top1 in points if r.format == fmt and r.runtime == rt]
        if sel:
            ax.scatter([p[0] for p in sel], [p[1] for p in sel], marker=marker, s=45, color=colour,
                       label=f"{fmt} on {rt}", zorder=3)
    bad = [(p50, top1) for r, p50, top1 in points if r.parity_failed]
    if bad:
        ax.scatter([p[0] for p in bad], [p[1] for p in bad], marker="x", s=140, color="tab:red", zorder=6,
                   label="parity FAIL (not recommended)")
    fx, fy = [points[i][1] for i in front], [points[i][2] for i in front]
    ax.step(fx, fy, where="post", color="0.4", linestyle="--", linewidth=1, label="Pareto front", zorder=2)
    ax.scatter(fx, fy, facecolors="none", edgecolors="k", s=120, linewidths=1, zorder=4)
    for i, (r, p50, top1) in enumerate(sorted(points, key=lambda t: t[1])):  # staggered: equal accuracies
        ax.annotate(f"{r.name} {r.runtime} {r.threads}t", (p50, top1), textcoords="offset points",
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
    return Path(path)


def _fastest_per_artifact(result: BenchResult) -> list[tuple[BenchRow, float, float]]:
    """One point per (artefact, runtime): its measured row with the lowest p50 (the thread count a user would
    pick)."""
    best: dict[tuple[str, str], tuple[BenchRow, float, float]] = {}
    for r, p50, top1 in measured(result.rows):
        key = (r.path, r.runtime)
        if key not in best or p50 < best[key][1]:
            best[key] = (r, p50, top1)
    return list(best.values())
