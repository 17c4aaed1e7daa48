"""Test accuracy and train time of ``edge-tl train`` on real photos (held-out test split of each run).

Targets (issue 3): catsdogs, features mode: mobilenet_v2 >= 97 %, efficientnet_lite0 >= 98 %. pets37 (37 breeds,
10 photos each): test accuracy per backbone (frozen EfficientNet-Lite0 + logistic regression: ~91 % in 5-fold
cross-validation). Train time per mode: ``features`` (cold cache: extraction + head; warm cache: head only)
and, with ``--modes features,finetune``, ``finetune``.

Uses ../shared/data/{catsdogs,pets37} (skipped with a message when absent). Runs go to a temp folder; the feature
cache is the normal one ($EDGE_TL_CACHE or ~/.cache/edge-tl), so a second invocation shows warm-cache times.

    .venv/bin/python benchmarks/bench_train_accuracy.py [--backbones mobilenet_v2,efficientnet_lite0]
        [--datasets catsdogs,pets37] [--modes features] [--finetune-epochs 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
TARGETS = {("catsdogs", "mobilenet_v2"): 0.97, ("catsdogs", "efficientnet_lite0"): 0.98}


def run_one(dataset: Path, backbone: str, mode: str, out: Path, epochs: int | None) -> dict:
    from rich.console import Console

    from edge_tl.train.api import TrainConfig, train

    cfg = TrainConfig(data=str(dataset), backbone=backbone, mode=mode, out=str(out), epochs=epochs, progress=False)
    t0 = time.perf_counter()
    res = train(cfg, console=Console(stderr=True, quiet=True))
    wall = time.perf_counter() - t0
    m = res.metrics
    return {"dataset": dataset.name, "backbone": backbone, "mode": mode, "test_accuracy": m["test_accuracy"],
            "val_accuracy": m["val_accuracy"], "test_images": m["test_images"], "epochs_run": m["epochs_run"],
            "wall_seconds": wall, "loop_seconds": m["train_seconds"],
            "cache_misses": m.get("feature_cache_misses"), "feature_images_per_s": m.get("feature_images_per_s")}


def cross_validate(dataset: Path, backbone: str, folds: int, epochs: int = 10, seed: int = 0) -> list[float]:
    """Stratified k-fold accuracy of edge-tl's head recipe (standardised cached features, AdamW, label
    smoothing, cosine schedule with warm-up, fixed epochs) on every usable image of ``dataset``."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from edge_tl.data.hygiene import scan
    from edge_tl.data.sources import resolve_dataset
    from edge_tl.models import create_model
    from edge_tl.train.features import extract
    from edge_tl.train.loop import cosine_with_warmup, make_optimizer
    from edge_tl.train.modes import feature_stats

    ds = resolve_dataset(str(dataset))
    rep = scan(ds.files, ds.labels, classes=ds.classes, progress=False)
    model = create_model(backbone, num_classes=len(ds.classes))
    feats, _ = extract(model, model.input_spec, [r.path for r in rep.records], [r.sha256 for r in rep.records])
    x, y = torch.from_numpy(feats[:, 0]), torch.tensor([r.label for r in rep.records])
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(y), int)
    for c in range(len(ds.classes)):
        idx = np.flatnonzero(y.numpy() == c)
        fold[rng.permutation(idx)] = np.arange(len(idx)) % folds
    accs = []
    for k in range(folds):
        tr, te = torch.from_numpy(fold != k), torch.from_numpy(fold == k)
        mu, sd = feature_stats(x[tr])
        xt, yt = (x[tr] - mu) / sd, y[tr]
        torch.manual_seed(seed + k)
        head = torch.nn.Linear(x.shape[1], len(ds.classes))
        opt = make_optimizer([{"params": list(head.parameters()), "lr": 3e-3}], 1e-4)
        steps = -(-len(yt) // 64)
        sched = cosine_with_warmup(opt, steps * epochs, steps)
        for _ in range(epochs):
            perm = torch.randperm(len(yt))
            for b in range(0, len(yt), 64):
                i = perm[b:b + 64]
                loss = F.cross_entropy(head(xt[i]), yt[i], label_smoothing=0.1)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        with torch.no_grad():
            accs.append(float((head((x[te] - mu) / sd).argmax(1) == y[te]).float().mean()))
    return accs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbones", default="mobilenet_v2,efficientnet_lite0")
    ap.add_argument("--datasets", default="catsdogs,pets37")
    ap.add_argument("--modes", default="features")
    ap.add_argument("--finetune-epochs", type=int, default=None, help="epochs for finetune/full (default: mode's)")
    ap.add_argument("--cv", type=int, default=5, help="k-fold cross-validation on pets37 (0 = off)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    datasets = [SHARED / d for d in args.datasets.split(",")]
    missing = [str(d) for d in datasets if not d.is_dir()]
    if missing:
        print(f"skipped: {', '.join(missing)} not found (this benchmark needs ../shared/data)")
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console(width=170)
    console.print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared machine: times are "
                  f"noisy); data from {SHARED.resolve()}")
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
                  f"{100 * target:.0f}{ok}" if target else "-", f"{100 * (r['val_accuracy'] or 0):.2f}",
                  str(r["test_images"]), str(r["epochs_run"]), f"{r['wall_seconds']:.1f}", f"{r['loop_seconds']:.1f}",
                  "-" if r["cache_misses"] is None else str(r["cache_misses"]),
                  f"{r['feature_images_per_s']:.1f}" if r["feature_images_per_s"] else "-")
    console.print(t)
    cv = {}
    if args.cv and (SHARED / "pets37").is_dir() and "pets37" in args.datasets:
        import statistics

        for backbone in args.backbones.split(","):
            accs = cross_validate(SHARED / "pets37", backbone, args.cv)
            cv[backbone] = accs
            console.print(f"pets37 {backbone}: {args.cv}-fold cross-validated accuracy "
                          f"{100 * statistics.mean(accs):.1f} % +- {100 * statistics.stdev(accs):.1f} "
                          f"(folds: {', '.join(f'{100 * a:.1f}' for a in accs)})")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": rows, "pets37_cv": cv}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
