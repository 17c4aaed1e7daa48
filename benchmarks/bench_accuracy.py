"""Accuracy you can trust: edge-tl's features-mode head next to a plain logistic-regression probe, on every image.

Stratified k-fold over all usable photos of each dataset (default 5 folds on ../shared/data/catsdogs, 1,000
photos, and on ../shared/data/pets37, 37 breeds x 10): every image is predicted once by a head that never saw it,
so the accuracy is over N unseen images (1 image = 100 / N points) with a 95 % Wilson interval. In each fold:

* edge-tl: what ``edge-tl train --mode features`` does with its defaults (standardised features, L2 strength chosen
  by an inner 5-fold cross-validation on the training folds, L-BFGS refit; :func:`edge_tl.train.head.probe`);
* probe: scikit-learn ``LogisticRegression()`` (C=1, lbfgs) on the raw frozen features, the usual linear probe.

Both read the same cached features (``edge_tl.train.features.extract``, the cache ``edge-tl train`` uses), so a
warm cache makes the whole table a matter of seconds per fold. Paired counts (images one gets right and the other
wrong) show whether a difference is more than noise. ``--finetune`` adds ``edge-tl train --mode finetune`` per fold
(slow on a CPU: minutes per fold). int8 rows are not measured here: quantisation fidelity has its own benchmark
(``benchmarks/bench_export.py``).

Needs ../shared/data (skipped with a message when absent) and scikit-learn (a dev dependency).

    nice .venv/bin/python benchmarks/bench_accuracy.py [--datasets catsdogs,pets37]
        [--backbones mobilenet_v2,efficientnet_lite0] [--folds 5] [--finetune] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
GOALS = {("catsdogs", "mobilenet_v2"): 0.983, ("catsdogs", "efficientnet_lite0"): 0.990,
         ("pets37", "efficientnet_lite0"): 0.915}
FINETUNE_GOAL = {"pets37": 0.93}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion k / n."""
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def load_features(dataset: Path, backbone: str) -> tuple[np.ndarray, np.ndarray, list[str], list[Path]]:
    """Frozen features (view 0) and labels of every usable image of ``dataset`` (hygiene scan first)."""
    from edge_tl.data.hygiene import scan
    from edge_tl.data.sources import resolve_dataset
    from edge_tl.models import create_model
    from edge_tl.train.features import extract

    ds = resolve_dataset(str(dataset))
    rep = scan(ds.files, ds.labels, classes=ds.classes, progress=False)
    model = create_model(backbone, num_classes=len(ds.classes))
    files = [Path(r.path) for r in rep.records]
    feats, _ = extract(model, model.input_spec, files, [r.sha256 for r in rep.records])
    return feats[:, 0].astype(np.float64), np.array([r.label for r in rep.records]), list(ds.classes), files


def kfold_features(x: np.ndarray, y: np.ndarray, n_classes: int, folds: int, seed: int) -> dict:
    """Out-of-fold predictions of edge-tl's head and of the plain probe, plus the l2 edge-tl chose per fold."""
    from sklearn.linear_model import LogisticRegression

    from edge_tl.train.head import probe, stratified_folds

    fold = stratified_folds(y, folds, seed)
    pred = {"edge-tl": np.full(len(y), -1), "probe": np.full(len(y), -1)}
    l2s, secs = [], []
    for f in range(folds):
        tr, te = fold != f, fold == f
        t0 = time.perf_counter()
        sel, w, b = probe(x[tr][:, None], y[tr], n_classes, seed=seed)
        secs.append(time.perf_counter() - t0)
        l2s.append(sel.fit.l2)
        pred["edge-tl"][te] = (x[te] @ w.T + b).argmax(1)
        lr = LogisticRegression(max_iter=5000).fit(x[tr], y[tr])
        pred["probe"][te] = lr.predict(x[te])
    return {"pred": pred, "l2": l2s, "head_seconds": secs, "fold": fold}


def finetune_folds(files: list[Path], y: np.ndarray, classes: list[str], fold: np.ndarray, backbone: str,
                   tmp: Path) -> np.ndarray:
    """Out-of-fold predictions of ``edge-tl train --mode finetune`` (defaults): one run per fold on a pre-split
    folder of links (train = the other folds, val carved from it; test = this fold)."""
    import torch
    from rich.console import Console

    from edge_tl.data.manifest import Manifest
    from edge_tl.data.preprocess import load_batch, normalize
    from edge_tl.models.checkpoint import load_checkpoint
    from edge_tl.train.api import TrainConfig, train

    pred = np.full(len(y), -1)
    for f in range(int(fold.max()) + 1):
        root = tmp / f"fold{f}"
        for i, (p, lab) in enumerate(zip(files, y)):
            dst = root / ("test" if fold[i] == f else "train") / classes[lab] / f"{i}{p.suffix}"
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.symlink_to(p.resolve())
        res = train(TrainConfig(data=str(root), backbone=backbone, mode="finetune", out=str(tmp / f"run{f}"),
                                progress=False), console=Console(stderr=True, quiet=True))
        m = Manifest.load(res.run_dir / "split.json")
        test = m.files("test")
        model, card = load_checkpoint(res.run_dir / "model.pt")
        with torch.no_grad():
            for i in range(0, len(test), 32):
                chunk = test[i:i + 32]
                x = torch.from_numpy(normalize(load_batch(chunk, card.input), card.input))
                pred[[int(Path(p).stem) for p in chunk]] = model.eval()(x).argmax(1).numpy()
    return pred


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="catsdogs,pets37")
    ap.add_argument("--backbones", default="mobilenet_v2,efficientnet_lite0")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--finetune", action="store_true", help="also k-fold edge-tl train --mode finetune (slow)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    datasets = [SHARED / d for d in args.datasets.split(",")]
    missing = [str(d) for d in datasets if not d.is_dir()]
    if missing:
        print(f"skipped: {', '.join(missing)} not found (this benchmark needs ../shared/data)")
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console(width=180)
    console.print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; data from {SHARED.resolve()}; "
                  f"{args.folds}-fold, seed {args.seed}")
    rows = []
    for ds in datasets:
        for backbone in args.backbones.split(","):
            t0 = time.perf_counter()
            x, y, classes, files = load_features(ds, backbone)
            t_feat = time.perf_counter() - t0
            out = kfold_features(x, y, len(classes), args.folds, args.seed)
            preds = dict(out["pred"])
            if args.finetune:
                with tempfile.TemporaryDirectory() as tmp:
                    preds["edge-tl finetune"] = finetune_folds(files, y, classes, out["fold"], backbone, Path(tmp))
            for name, p in preds.items():
                k, n = int((p == y).sum()), len(y)
                lo, hi = wilson(k, n)
                ref = preds["probe"]
                goal = (FINETUNE_GOAL.get(ds.name) if name == "edge-tl finetune"
                        else GOALS.get((ds.name, backbone)) if name == "edge-tl" else None)
                rows.append({"dataset": ds.name, "backbone": backbone, "head": name, "correct": k, "images": n,
                             "accuracy": k / n, "ci95": [lo, hi], "resolution_pt": 100 / n,
                             "goal": goal, "only_this_right": int(((p == y) & (ref != y)).sum()),
                             "only_probe_right": int(((p != y) & (ref == y)).sum()),
                             "l2_per_fold": out["l2"] if name == "edge-tl" else None,
                             "head_seconds_per_fold": (sum(out["head_seconds"]) / args.folds
                                                       if name == "edge-tl" else None),
                             "feature_seconds": t_feat})
            console.print(f"{ds.name} {backbone}: features {t_feat:.0f} s, edge-tl head "
                          f"{sum(out['head_seconds']) / args.folds:.1f} s per fold, l2 per fold {out['l2']}")
    t = Table(title=f"accuracy on unseen photos ({args.folds}-fold, every image predicted once)")
    for col in ("data", "backbone", "head", "accuracy %", "95 % interval", "correct / images", "1 image =",
                "goal", "vs probe: +only / -only"):
        t.add_column(col, justify="left" if col in ("data", "backbone", "head") else "right")
    for r in rows:
        ok = "" if r["goal"] is None else f"{100 * r['goal']:.1f} {'ok' if r['accuracy'] >= r['goal'] else 'MISSED'}"
        vs = "-" if r["head"] == "probe" else f"+{r['only_this_right']} / -{r['only_probe_right']}"
        t.add_row(r["dataset"], r["backbone"], r["head"], f"{100 * r['accuracy']:.2f}",
                  f"{100 * r['ci95'][0]:.2f} - {100 * r['ci95'][1]:.2f}", f"{r['correct']} / {r['images']}",
                  f"{r['resolution_pt']:.2f} pt", ok or "-", vs)
    console.print(t)
    console.print("int8 rows: not measured by this benchmark (see benchmarks/bench_export.py).")
    if args.json:
        Path(args.json).write_text(json.dumps({"folds": args.folds, "seed": args.seed, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
