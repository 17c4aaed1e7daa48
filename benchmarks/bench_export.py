"""Export benchmark: size, conversion time, fidelity and latency of every ONNX variant of a trained run.

Usage::

    .venv/bin/python benchmarks/bench_export.py                       # mobilenet_v2 on ../shared/data/catsdogs
    .venv/bin/python benchmarks/bench_export.py --run runs/latest     # an existing run
    .venv/bin/python benchmarks/bench_export.py --backbone efficientnet_lite0

Trains a frozen-feature run first when none is given (on ``../shared/data/catsdogs`` when present, else on the
generated ``sample`` data with ``tiny_cnn``, and says so). Exports fp32, fp16, dynamic int8 and static int8 with
the default recipe (logits layer in float) and the naive full-int8 recipe (before/after), verifies each
on the run's held-out test split, and times batch-1 inference at ``--threads`` (median of ``--runs``).
The machine is shared: absolute times are noisy, compare ratios from one run.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

from _workloads import batch1, export_variants, train_run

from edge_tl.runtimes.timing import median_ms

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, help="existing run folder (skips training)")
    ap.add_argument("--data", type=Path, default=SHARED / "catsdogs")
    ap.add_argument("--backbone", default="mobilenet_v2")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--work", type=Path, default=Path("/tmp/edge_tl_bench_export"))
    ap.add_argument("--calib-size", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=50)
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table

    from edge_tl.card import ModelCard
    from edge_tl.data.manifest import manifest_for_card
    from edge_tl.data.preprocess import load_batch

    console = Console(width=200)
    data = args.data if args.data.is_dir() else None
    if data is not None:
        console.print(f"using ../shared data: {data}")
    run = args.run or train_run(data, args.backbone, args.work, args.epochs)
    card = ModelCard.load(run / "card.json")
    test_files = manifest_for_card(card, run / "card.json").files("test")
    pixels = load_batch(test_files[:8], card.input)

    results = {"float": export_variants(run, args.work / "exported", ["none", "fp16", "dynamic", "int8"],
                                        recipe="float", calib_size=args.calib_size),
               "quantized": export_variants(run, args.work / "exported_naive", ["int8"], recipe="quantized",
                                            calib_size=args.calib_size)}
    table = Table(title=f"edge-tl export: {card.backbone} on {card.manifest and Path(card.run_dir or '').name} "
                        f"({len(test_files)} held-out images, {args.threads} thread)")
    for col in ("artefact", "recipe", "MB", "convert s", "acc %", "drop pt", "agree %", "max|Δlogit|",
                "sat %", "KL", "max|Δprob|", "ECE %", "ECE ref %", "ms", "status"):
        table.add_column(col, justify="left" if col in ("artefact", "recipe", "status") else "right")
    rows = []
    for recipe, res in results.items():
        parity = {r.variant: r for r in res.parity}
        for a in res.artifacts:
            if recipe == "quantized" and a.quantize != "int8":
                continue
            r = parity[a.path.name]
            with warnings.catch_warnings():  # the naive variant warns that it saturates: that is the point here
                warnings.simplefilter("ignore")
                ms = median_ms(batch1(a.path, pixels, args.threads), runs=args.runs)
            row = {"artefact": a.path.name, "recipe": recipe if a.quantize == "int8" else "-",
                   "size_mb": a.size_mb, "convert_s": a.seconds, "ms": ms, **r.to_json()}
            rows.append(row)
            table.add_row(a.path.name, row["recipe"], f"{a.size_mb:.2f}", f"{a.seconds:.1f}",
                          f"{100 * r.accuracy:.2f}", f"{r.drop:+.2f}", f"{100 * r.agreement:.2f}",
                          f"{r.max_dlogit:.2g}", f"{100 * r.saturated:.2f}", f"{r.kl:.2g}", f"{r.max_dprob:.3f}",
                          f"{100 * r.ece:.2f}", f"{100 * r.ece_reference:.2f}", f"{ms:.2f}",
                          "pass" if r.passed else "FAIL")
    console.print(table)
    for row in rows:
        for failure in row["failures"]:
            console.print(f"FAIL {row['artefact']} ({row['recipe']}): {failure}")
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "bench_export.json").write_text(json.dumps(rows, indent=2, default=str) + "\n")
    console.print(f"rows written to {args.work / 'bench_export.json'}; machine shared, times are noisy")


if __name__ == "__main__":
    main()
