"""Test accuracy and train time of ``edge-tl train`` on real photos (held-out test split of each run).

One held-out test split per run (150 catsdogs photos: 1 image = 0.67 point, too coarse to rank heads; for that,
k-fold over every image, see ``bench_accuracy.py``). Train time per mode: ``features`` (cold cache: extraction +
head; warm cache: head only) and, with ``--modes features,finetune``, ``finetune``.

Uses ../shared/data/{catsdogs,pets37} (skipped with a message when absent). Runs go to a temp folder; the feature
cache is the normal one ($EDGE_TL_CACHE or ~/.cache/edge-tl), so a second invocation shows warm-cache times.

    .venv/bin/python benchmarks/bench_train_accuracy.py [--backbones mobilenet_v2,efficientnet_lite0]
        [--datasets catsdogs,pets37] [--modes features] [--finetune-epochs 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _shared import GOALS as TARGETS
from _shared import datasets as find_datasets
from _shared import load_line


def run_one(dataset: Path, backbone: str, mode: str, out: Path, epochs: int | None) -> dict:
    from edge_tl.train.api import TrainConfig, train

    cfg = TrainConfig(data=str(dataset), backbone=backbone, mode=mode, out=str(out), epochs=epochs, progress=False)
    t0 = time.perf_counter()
    res = train(cfg)
    wall = time.perf_counter() - t0
    m = res.metrics
    return {"dataset": dataset.name, "backbone": backbone, "mode": mode, "test_accuracy": m["test_accuracy"],
            "val_accuracy": m["val_accuracy"], "test_images": m["test_images"], "epochs_run": m["epochs_run"],
            "wall_seconds": wall, "loop_seconds": m["train_seconds"],
            "cache_misses": m.get("feature_cache_misses"), "feature_images_per_s": m.get("feature_images_per_s")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbones", default="mobilenet_v2,efficientnet_lite0")
    ap.add_argument("--datasets", default="catsdogs,pets37")
    ap.add_argument("--modes", default="features")
    ap.add_argument("--finetune-epochs", type=int, default=None, help="epochs for finetune/full (default: mode's)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    datasets = find_datasets(args.datasets)
    if datasets is None:
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console(width=170)
    console.print(load_line())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for ds in datasets:
            for backbone in args.backbones.split(","):
                for mode in args.modes.split(","):
                    epochs = args.finetune_epochs if mode != "features" else None
                    row = run_one(ds, backbone, mode, Path(tmp) / f"{ds.name}-{backbone}-{mode}", epochs)
                    rows.append(row)
                    console.print(f"{ds.name} {backbone} {mode}: test {100 * row['test_accuracy']:.2f}% "
                                  f"in {row['wall_seconds']:.0f} s")
    t = Table(title="edge-tl train: held-out test accuracy and train time")
    for col in ("data", "backbone", "mode", "test acc %", "target", "val acc %", "test imgs", "epochs",
                "wall s", "loop s", "extracted", "extract img/s"):
        t.add_column(col, justify="left" if col in ("data", "backbone", "mode") else "right")
    for r in rows:
        target = TARGETS.get((r["dataset"], r["backbone"])) if r["mode"] == "features" else None
        ok = "" if target is None else (" ok" if r["test_accuracy"] >= target else " MISSED")
        t.add_row(r["dataset"], r["backbone"], r["mode"], f"{100 * r['test_accuracy']:.2f}",
                  f"{100 * target:.1f}{ok}" if target else "-", f"{100 * (r['val_accuracy'] or 0):.2f}",
                  str(r["test_images"]), str(r["epochs_run"]), f"{r['wall_seconds']:.1f}", f"{r['loop_seconds']:.1f}",
                  "-" if r["cache_misses"] is None else str(r["cache_misses"]),
                  f"{r['feature_images_per_s']:.1f}" if r["feature_images_per_s"] else "-")
    console.print(t)
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
