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
import statistics
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def train_run(data: Path | None, backbone: str, work: Path, epochs: int) -> Path:
    from edge_tl.train.api import TrainConfig, train

    if data is None:
        from edge_tl.data.sample import generate_sample

        data, backbone = generate_sample(work / "sample", per_class=40, size=64), "tiny_cnn"
        print(f"../shared data not found: using generated sample data with {backbone}")
    cfg = TrainConfig(data=str(data), backbone=backbone, mode="features", epochs=epochs, seed=0,
                      out=str(work / "runs" / f"{backbone}-{data.name}"), force=True,
                      weights="none" if backbone.startswith("tiny") else "default")
    return Path(train(cfg).run_dir)


def latency_ms(path: Path, pixels, threads: int, runs: int) -> float:
    from edge_tl.runtimes import load

    rt = load(path, threads=threads)
    one = pixels[:1]
    for _ in range(5):
        rt(one)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        rt(one)
        times.append(1000 * (time.perf_counter() - t))
    return statistics.median(times)


def export_variants(run: Path, out: Path, recipe: str, calib_size: int, modes: list[str]):
    from edge_tl.errors import ParityError
    from edge_tl.export.api import export
    from edge_tl.export.registry import ExportOptions

    opts = ExportOptions(calib_size=calib_size, output=recipe, force=True)
    try:
        return export(run, ["onnx"], modes, out, opts)
    except ParityError as exc:  # a failing variant is a result to report, not a crash
        return exc.result  # type: ignore[attr-defined]


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

    results = {"float": export_variants(run, args.work / "exported", "float", args.calib_size,
                                        ["none", "fp16", "dynamic", "int8"]),
               "quantized": export_variants(run, args.work / "exported_naive", "quantized", args.calib_size,
                                            ["int8"])}
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
                ms = latency_ms(a.path, pixels, args.threads, args.runs)
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
