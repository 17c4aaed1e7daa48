"""Per-layer int8 sensitivity and the accuracy-budgeted float fallback on real photos.

For each backbone x dataset x format: train a frozen-feature head (cached features), then `quant_report`:
the sensitivity table (top rows), plain full int8 vs the budgeted model (drop, agreement, float layers, latency
at 1 thread, speed-up over fp32). Uses ../shared/data when present (say so in the output); otherwise exits.

    .venv/bin/python benchmarks/bench_budget.py --backbones mobilenet_v2,efficientnet_lite0 \
        --datasets catsdogs,pets37 --formats onnx,tflite --max-drop 0.5

``mobilenet_v3_large`` has no offline pretrained weights here: pass ``--random-init mobilenet_v3_large`` to study
its sensitivity with random weights (its accuracy is then meaningless; the table is what matters).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbones", default="mobilenet_v2,efficientnet_lite0")
    ap.add_argument("--random-init", default="", help="backbones to use with --weights none")
    ap.add_argument("--datasets", default="catsdogs,pets37")
    ap.add_argument("--formats", default="onnx,tflite")
    ap.add_argument("--max-drop", type=float, default=0.5)
    ap.add_argument("--calib-size", type=int, default=100)
    ap.add_argument("--n", type=int, default=200, help="validation images to measure on")
    ap.add_argument("--top", type=int, default=8)
    ap.add_argument("--work", default="/tmp/edge_tl_bench_budget")
    args = ap.parse_args()
    if not SHARED.is_dir():
        print(f"{SHARED} not found: this benchmark needs the real photos of ../shared/data", file=sys.stderr)
        return 1
    from rich.console import Console
    from rich.table import Table

    from edge_tl.cli.quant_report_view import render
    from edge_tl.export.quant_report import quant_report
    from edge_tl.train.api import TrainConfig, train

    console = Console(width=160)
    console.print(f"data: {SHARED} (real photos, shared/)")
    summary = Table(title=f"accuracy-budgeted int8 (--max-drop {args.max_drop})")
    for col in ("backbone", "data", "format", "float acc %", "int8 drop pt", "budgeted drop pt", "float layers",
                "fp32 ms", "int8 ms", "budgeted ms", "speed-up", "fits", "s"):
        summary.add_column(col, justify="right")
    random_init = set(filter(None, args.random_init.split(",")))
    for backbone in [*filter(None, args.backbones.split(",")), *sorted(random_init)]:
        for data in args.datasets.split(","):
            run = Path(args.work) / f"{backbone}-{data}"
            cfg = TrainConfig(data=str(SHARED / data), backbone=backbone, out=str(run), force=True, progress=False,
                              weights="none" if backbone in random_init else "default")
            train(cfg)
            for fmt in args.formats.split(","):
                t0 = time.perf_counter()
                rep = quant_report(run, fmt, calib_size=args.calib_size, n_eval=args.n, max_drop=args.max_drop)
                render(rep, console, args.top)
                b = rep.budget
                first, chosen = b.steps[0], b.chosen
                speed = (b.float_latency_ms / chosen.latency_ms) if b.float_latency_ms and chosen.latency_ms else None
                summary.add_row(backbone + (" (random)" if backbone in random_init else ""), data, fmt,
                                f"{100 * b.float_accuracy:.2f}", f"{first.drop:.2f}", f"{chosen.drop:.2f}",
                                str(len(chosen.float_layers)), _ms(b.float_latency_ms), _ms(first.latency_ms),
                                _ms(chosen.latency_ms), f"{speed:.2f}x" if speed else "-", str(b.fits),
                                f"{time.perf_counter() - t0:.0f}")
    console.print(summary)
    return 0


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


if __name__ == "__main__":
    raise SystemExit(main())
