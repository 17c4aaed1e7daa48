"""Accuracy you can trust: edge-tl's features-mode head next to a plain logistic-regression probe, on every image.

Stratified k-fold over all usable photos of each dataset (default 5 folds on ../shared/data/catsdogs, 1,000
photos, and on ../shared/data/pets37, 37 breeds x 10): every image is predicted once by a head that never saw it,
so the accuracy is over N unseen images (1 image = 100 / N points) with a 95 % Wilson interval. In each fold:

* edge-tl: what ``edge-tl train --mode features`` does with its defaults (standardised features, L2 strength chosen
  by an inner cross-validation on the training folds, L-BFGS refit; :func:`edge_tl.train.head.probe`);
* probe: scikit-learn ``LogisticRegression()`` (C=1, lbfgs) on the raw frozen features, the usual linear probe.

Both read the same cached features (``edge_tl.train.features.extract``, the cache ``edge-tl train`` uses), so a
warm cache makes the whole table a matter of the head fits. Paired counts (images one gets right and the other
wrong) and their exact McNemar p-value say whether a difference is more than noise. ``--finetune`` adds
``edge-tl train --mode finetune`` (linear probe, then fine-tuning) on the first ``--finetune-folds`` folds (slow on
a CPU: minutes per fold); its rows, and the features rows they are paired with, cover those folds' images only.
``--img-size`` measures another input resolution (the backbone's default otherwise). int8 rows are not measured
here: quantisation fidelity has its own benchmark (``benchmarks/bench_export.py``).

Needs ../shared/data (skipped with a message when absent) and scikit-learn (a dev dependency).

    nice .venv/bin/python benchmarks/bench_accuracy.py [--datasets catsdogs,pets37]
        [--backbones mobilenet_v2,efficientnet_lite0] [--folds 5] [--img-size N]
        [--finetune [--finetune-folds K]] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from _shared import FINETUNE_GOALS, GOALS, datasets, load_line, mcnemar_p, wilson


def load_features(dataset: Path, backbone: str, img_size: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray, list[str], list[Path]]:
    """Frozen features (view 0) and labels of every usable image of ``dataset`` (hygiene scan first)."""
    from edge_tl.data.hygiene import scan
    from edge_tl.data.sources import resolve_dataset
    from edge_tl.models import create_model
    from edge_tl.train.features import extract

    ds = resolve_dataset(str(dataset))
    rep = scan(ds.files, ds.labels, classes=ds.classes, progress=False)
    model = create_model(backbone, num_classes=len(ds.classes), img_size=img_size)
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
                   tmp: Path, n_folds: int, img_size: int | None) -> np.ndarray:
    """Out-of-fold predictions of ``edge-tl train --mode finetune`` (defaults) on folds ``0..n_folds-1`` (-1
    elsewhere): one run per fold on a pre-split folder of links (train = the other folds, val carved from it;
    test = this fold)."""
    import torch

    from edge_tl.data.manifest import Manifest
    from edge_tl.data.preprocess import load_batch, normalize
    from edge_tl.models.checkpoint import load_checkpoint
    from edge_tl.train.api import TrainConfig, train

    pred = np.full(len(y), -1)
    for f in range(n_folds):
        root = tmp / f"fold{f}"
        for i, (p, lab) in enumerate(zip(files, y)):
            dst = root / ("test" if fold[i] == f else "train") / classes[lab] / f"{i}{p.suffix}"
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.symlink_to(p.resolve())
        t0 = time.perf_counter()
        res = train(TrainConfig(data=str(root), backbone=backbone, mode="finetune", out=str(tmp / f"run{f}"),
                                img_size=img_size, progress=False))
        m = Manifest.load(res.run_dir / "split.json")
        test = m.files("test")
        model, card = load_checkpoint(res.run_dir / "model.pt")
        with torch.no_grad():
            for i in range(0, len(test), 32):
                chunk = test[i:i + 32]
                x = torch.from_numpy(normalize(load_batch(chunk, card.input), card.input))
                pred[[int(Path(p).stem) for p in chunk]] = model.eval()(x).argmax(1).numpy()
        done = pred[fold == f]
        print(f"  finetune fold {f}: {int((done == y[fold == f]).sum())} / {len(done)} in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
    return pred


def score_rows(ds: str, backbone: str, preds: dict[str, np.ndarray], y: np.ndarray, subset: np.ndarray,
               scope: str, out: dict, folds: int) -> list[dict]:
    """One row per head over the images in ``subset``, each paired with the plain probe on the same images."""
    rows = []
    ref = preds["probe"][subset] == y[subset]
    for name, p in preds.items():
        ok = p[subset] == y[subset]
        k, n = int(ok.sum()), int(subset.sum())
        lo, hi = wilson(k, n)
        goal = (FINETUNE_GOALS.get(ds) if name == "edge-tl finetune"
                else GOALS.get((ds, backbone)) if name == "edge-tl" else None)
        only_this, only_probe = int((ok & ~ref).sum()), int((~ok & ref).sum())
        rows.append({"dataset": ds, "backbone": backbone, "head": name, "images_scope": scope, "correct": k,
                     "images": n, "accuracy": k / n, "ci95": [lo, hi], "resolution_pt": 100 / n, "goal": goal,
                     "goal_met": None if goal is None else k / n >= goal, "only_this_right": only_this,
                     "only_probe_right": only_probe, "mcnemar_p": mcnemar_p(only_this, only_probe),
                     "l2_per_fold": out["l2"] if name == "edge-tl" else None,
                     "head_seconds_per_fold": sum(out["head_seconds"]) / folds if name == "edge-tl" else None})
    return rows


def print_table(rows: list[dict], folds: int) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"accuracy on unseen photos ({folds}-fold, every image predicted once)")
    for col in ("data", "backbone", "head", "images", "accuracy %", "95 % interval", "correct / images",
                "1 image =", "goal", "vs probe: +only / -only", "McNemar p"):
        t.add_column(col, justify="left" if col in ("data", "backbone", "head", "images") else "right")
    for r in rows:
        ok = "-" if r["goal"] is None else f"{100 * r['goal']:.1f} {'ok' if r['goal_met'] else 'MISSED'}"
        probe = r["head"] == "probe"
        t.add_row(r["dataset"], r["backbone"], r["head"], r["images_scope"], f"{100 * r['accuracy']:.2f}",
                  f"{100 * r['ci95'][0]:.2f} - {100 * r['ci95'][1]:.2f}", f"{r['correct']} / {r['images']}",
                  f"{r['resolution_pt']:.2f} pt", ok,
                  "-" if probe else f"+{r['only_this_right']} / -{r['only_probe_right']}",
                  "-" if probe else f"{r['mcnemar_p']:.2f}")
    Console(width=200).print(t)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="catsdogs,pets37")
    ap.add_argument("--backbones", default="mobilenet_v2,efficientnet_lite0")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--img-size", type=int, default=None, help="input size (default: the backbone's)")
    ap.add_argument("--finetune", action="store_true", help="also edge-tl train --mode finetune per fold (slow)")
    ap.add_argument("--finetune-folds", type=int, default=None, help="fine-tune on the first K folds only")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    found = datasets(args.datasets)
    if found is None:
        return 0
    print(f"{load_line()}; {args.folds}-fold, seed {args.seed}", flush=True)
    rows = []
    for ds in found:
        for backbone in args.backbones.split(","):
            t0 = time.perf_counter()
            x, y, classes, files = load_features(ds, backbone, args.img_size)
            t_feat = time.perf_counter() - t0
            out = kfold_features(x, y, len(classes), args.folds, args.seed)
            print(f"{ds.name} {backbone}: features {t_feat:.0f} s, edge-tl head "
                  f"{sum(out['head_seconds']) / args.folds:.1f} s per fold, l2 per fold {out['l2']}", flush=True)
            rows += score_rows(ds.name, backbone, out["pred"], y, np.ones(len(y), bool), "all", out, args.folds)
            if args.finetune:
                k = min(args.folds, args.finetune_folds or args.folds)
                with tempfile.TemporaryDirectory() as tmp:
                    ft = finetune_folds(files, y, classes, out["fold"], backbone, Path(tmp), k, args.img_size)
                subset = out["fold"] < k
                scope = "all" if k == args.folds else "fold 0" if k == 1 else f"folds 0-{k - 1}"
                preds = {**out["pred"], "edge-tl finetune": ft}
                if k < args.folds:  # the features rows again, on the fine-tuned folds' images, for pairing
                    rows += score_rows(ds.name, backbone, preds, y, subset, scope, out, args.folds)
                else:
                    rows += score_rows(ds.name, backbone, {"probe": out["pred"]["probe"], "edge-tl finetune": ft},
                                       y, subset, scope, out, args.folds)[1:]
    print_table(rows, args.folds)
    print("int8 rows: not measured by this benchmark (see benchmarks/bench_export.py).")
    if args.json:
        Path(args.json).write_text(json.dumps({"folds": args.folds, "seed": args.seed, "img_size": args.img_size,
                                               "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
