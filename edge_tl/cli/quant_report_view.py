"""Rich tables for ``edge-tl quant-report``."""

from __future__ import annotations

from typing import Any

from edge_tl.export.quant_report import QuantReport, short_name


def _range(lo: float | None, hi: float | None) -> str:
    return "-" if lo is None or hi is None else f"[{lo:.3g}, {hi:.3g}]"


def render(report: QuantReport, console: Any, top: int = 15) -> None:
    """Print the sensitivity table, the budget search steps and the calibration-method comparison."""
    from rich.table import Table

    s = report.sensitivity
    t = Table(title=f"int8 sensitivity, {report.backbone} -> {report.format} ({s.images} {report.eval_split} images,"
                    f" {report.calib_images} calibration images, {report.calib_method})")
    for col in ("#", "layer", "op", "rel. logit error", "top-1 agree %", "output range", "flags"):
        t.add_column(col, justify="right" if col in ("#", "rel. logit error", "top-1 agree %") else "left")
    for i, r in enumerate(s.layers[:top], 1):
        t.add_row(str(i), r.label or short_name(r.name, 50), r.op_type, f"{r.rel_error:.4f}", f"{100 * r.agreement:.1f}",
                  _range(r.out_min, r.out_max), ", ".join(r.flags))
    console.print(t)
    b = report.budget
    steps = Table(title=f"float fallback search, budget {b.max_drop:.2f} pt (float accuracy {100 * b.float_accuracy:.2f} %"
                        + (f", float {b.float_latency_ms:.2f} ms" if b.float_latency_ms else "") + ")")
    for col in ("float layers", "accuracy %", "drop pt", "agree %", "size KB", "ms (1 thread)", "speed-up vs float"):
        steps.add_column(col, justify="right")
    for st in b.steps:
        speed = f"{b.float_latency_ms / st.latency_ms:.2f}x" if b.float_latency_ms and st.latency_ms else "-"
        steps.add_row(str(len(st.float_layers)), f"{100 * st.accuracy:.2f}", f"{st.drop:.2f}", f"{100 * st.agreement:.1f}",
                      f"{st.size_bytes / 1024:.0f}", f"{st.latency_ms:.2f}" if st.latency_ms else "-", speed)
    console.print(steps)
    verdict = "fits" if b.fits else f"does NOT fit (still {b.excess:.2f} pt over)"
    labels = {r.name: r.label for r in s.layers}
    kept = ", ".join(labels.get(n) or short_name(n, 40) for n in b.chosen.float_layers) or "none"
    console.print(f"budget {b.max_drop:.2f} pt {verdict}; layers kept float: {kept}")
    if len(report.methods) > 1:
        m = Table(title="calibration methods (full int8)")
        for col in ("method", "accuracy %", "drop pt", "agree %"):
            m.add_column(col, justify="right")
        for name, row in report.methods.items():
            m.add_row(name, f"{100 * row['accuracy']:.2f}", f"{row['drop']:.2f}", f"{100 * row['agreement']:.1f}")
        console.print(m)
