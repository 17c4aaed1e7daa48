"""TFLite benchmark: conversion time, size, LiteRT latency per variant, and int8 calibration fidelity.

Usage::

    .venv/bin/python benchmarks/bench_tflite.py speed      # mobilenet_v2 224 px, random init (BN re-estimated)
    .venv/bin/python benchmarks/bench_tflite.py fidelity   # ImageNet mobilenet_v2 + head on ../shared catsdogs
    .venv/bin/python benchmarks/bench_tflite.py all --json out.json

``speed``: converts ``--backbone`` with a 2-class head (random init: no download needed; BatchNorm statistics
re-estimated on the calibration images so activations are realistic), quantises fp16 / dynamic / int8 (int8
logits, float logits, and the naive saturating calibration) and times batch-1 ``interpreter.invoke()`` at 1 and 2
threads (median of ``--runs``, variants timed round-robin so machine load hits them alike). Compare with the
LiteRT table of ``../shared/BASELINES.md``.

``fidelity``: needs ``../shared/data/catsdogs`` and the pretrained weights; trains a linear head on frozen
features of a seeded train split, exports float and full int8 with every calibration method of
:mod:`edge_tl.export.tflite_quant` and reports, on the held-out split, accuracy, top-1 agreement, the fraction of
saturated int8 outputs, max |delta prob| and ECE against PyTorch.

The machine is shared by several developers: absolute times are noisy; compare ratios from one run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))

from edge_tl.runtimes import softmax  # noqa: E402


def _table(title: str, cols: list[str], rows: list[list[object]]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    for c in cols:
        t.add_column(c, justify="right" if c not in ("variant", "method") else "left")
    for r in rows:
        t.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in r])
    Console(width=160).print(t)


def invoke_ms(content: bytes, threads: int, runs: int) -> float:
    """Median batch-1 ``invoke()`` time of a flatbuffer with XNNPACK at ``threads``."""
    from edge_tl.runtimes.litert_rt import make_interpreter

    it = make_interpreter(content, threads)
    d = it.get_input_details()[0]
    it.set_tensor(d["index"], np.zeros(d["shape"], dtype=d["dtype"]))
    for _ in range(5):
        it.invoke()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        it.invoke()
        times.append(1000 * (time.perf_counter() - t))
    return statistics.median(times)


def catsdogs_files(seed: int = 0) -> tuple[list[Path], list[int], list[str]] | None:
    root = SHARED / "catsdogs"
    if not root.is_dir():
        return None
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    items = [(f, i) for i, c in enumerate(classes) for f in sorted((root / c).iterdir()) if f.suffix.lower() in
             (".jpg", ".jpeg", ".png")]
    random.Random(seed).shuffle(items)
    return [f for f, _ in items], [y for _, y in items], classes


def reestimate_bn(model, x) -> None:
    import torch

    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        for i in range(0, len(x), 16):
            model(x[i:i + 16])
    model.eval()


def interleaved_ms(contents: dict[str, bytes], threads: int, runs: int) -> dict[str, float]:
    """Median batch-1 ``invoke()`` ms per flatbuffer, timed round-robin so load drift hits every variant alike."""
    from edge_tl.runtimes.litert_rt import make_interpreter

    its = {}
    for name, content in contents.items():
        it = make_interpreter(content, threads)
        d = it.get_input_details()[0]
        it.set_tensor(d["index"], np.zeros(d["shape"], dtype=d["dtype"]))
        for _ in range(3):
            it.invoke()
        its[name] = it
    times: dict[str, list[float]] = {n: [] for n in its}
    for _ in range(runs):
        for name, it in its.items():
            t = time.perf_counter()
            it.invoke()
            times[name].append(1000 * (time.perf_counter() - t))
    return {n: statistics.median(v) for n, v in times.items()}


SPEED_VARIANTS = (  # (label, quantize, calibration method, int8 output)
    ("fp32", "none", "minmax", "quantized"), ("fp16", "fp16", "minmax", "quantized"),
    ("dynamic", "dynamic", "minmax", "quantized"), ("int8 (int8 logits, minmax)", "int8", "minmax", "quantized"),
    ("int8 (float logits)", "int8", "minmax", "float"), ("int8 (naive ema, saturating)", "int8", "ema", "quantized"),
)


def speed(backbone: str, size: int, runs: int, calib_n: int, work: Path, classes: int = 2) -> list[dict]:
    import torch

    from edge_tl.card import ModelCard
    from edge_tl.data.preprocess import load_batch, normalize
    from edge_tl.export.tflite_export import convert_float, export_tflite
    from edge_tl.models import create_model, get_spec

    spec = get_spec(backbone).input_spec(size)
    found = catsdogs_files()
    if found:
        pixels = load_batch(found[0][:calib_n], spec)
        print(f"calibration/BN images: {calib_n} photos from {SHARED / 'catsdogs'}")
    else:
        pixels = np.random.default_rng(0).integers(0, 256, (calib_n, size, size, 3), dtype=np.uint8)
        print("../shared data not found: calibration on random pixels")
    torch.manual_seed(0)
    model = create_model(backbone, num_classes=classes, weights="none", img_size=size)
    reestimate_bn(model, torch.from_numpy(normalize(pixels, spec)))
    card = ModelCard(classes=tuple(f"c{i}" for i in range(classes)), input=spec, backbone=backbone,
                     weights="none")
    t = time.perf_counter()
    content = convert_float(model, size)
    convert_s = time.perf_counter() - t
    rows, contents = [], {}
    for label, q, method, output in SPEED_VARIANTS:
        res = export_tflite(model, card, work / f"speed_{q}_{method}_{output}.tflite", q, pixels,
                            calib_method=method, output=output, float_content=content)
        contents[label] = res.path.read_bytes()
        rows.append({"variant": label, "seconds": convert_s if q == "none" else res.seconds,
                     "size_mb": len(contents[label]) / 1e6, "notes": list(res.notes)})
    ms = {t: interleaved_ms(contents, t, runs) for t in (1, 2)}
    for r in rows:
        r["ms_1t"], r["ms_2t"] = ms[1][r["variant"]], ms[2][r["variant"]]
    _table(f"LiteRT {backbone} {size} px, {classes} classes, random init (BN re-estimated), batch 1, median of "
           f"{runs} (round-robin)", ["variant", "convert/quantise s", "MB", "ms 1 thread", "ms 2 threads"],
           [[r["variant"], r["seconds"], r["size_mb"], r["ms_1t"], r["ms_2t"]] for r in rows])
    for r in rows:
        for n in r["notes"]:
            print(f"note ({r['variant']}): {n}")
    return rows


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    conf, pred = probs.max(1), probs.argmax(1)
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            total += m.mean() * abs((pred[m] == labels[m]).mean() - conf[m].mean())
    return float(total)


def train_head(model, feats, labels, epochs: int = 200) -> None:
    """Logistic regression on frozen features (full-batch LBFGS, small L2), written into ``model.head``."""
    import torch

    x, y = torch.from_numpy(feats), torch.from_numpy(labels)
    head = model.head
    opt = torch.optim.LBFGS(head.parameters(), lr=0.5, max_iter=epochs)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(head(x), y) + 1e-4 * head.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)


def fidelity(backbone: str, n_train: int, n_test: int, calib_n: int, work: Path) -> list[dict]:
    import torch

    from edge_tl.card import ModelCard
    from edge_tl.data.preprocess import load_batch, normalize
    from edge_tl.export.tflite_export import convert_float, export_tflite
    from edge_tl.export.tflite_quant import CALIB_METHODS
    from edge_tl.models import create_model, get_spec
    from edge_tl.runtimes import load

    found = catsdogs_files()
    if not found:
        print("../shared/data/catsdogs not found: fidelity benchmark skipped")
        return []
    files, labels, classes = found
    spec = get_spec(backbone).input_spec()
    tr_f, te_f = files[:n_train], files[n_train:n_train + n_test]
    tr_y, te_y = np.array(labels[:n_train]), np.array(labels[n_train:n_train + n_test])
    print(f"data: {SHARED / 'catsdogs'} ({n_train} train / {n_test} held-out photos, seed 0), {backbone} ImageNet "
          f"weights + linear head")
    t = time.perf_counter()
    torch.set_num_threads(2)
    model = create_model(backbone, num_classes=len(classes), weights="default")
    cache = work / f"fidelity_{backbone}_{n_train}_{n_test}.npz"  # decoded pixels + features, reused by reruns
    if cache.exists():
        z = np.load(cache)
        tr_px, te_px, feats = z["tr_px"], z["te_px"], z["feats"]
    else:
        tr_px, te_px = load_batch(tr_f, spec), load_batch(te_f, spec)
        with torch.no_grad():
            feats = np.concatenate([model.forward_features(torch.from_numpy(normalize(tr_px[i:i + 32], spec)))
                                    .numpy() for i in range(0, len(tr_px), 32)])
        np.savez(cache, tr_px=tr_px, te_px=te_px, feats=feats)
    torch.manual_seed(0)
    train_head(model, feats, tr_y.astype(np.int64))
    with torch.no_grad():
        ref = np.concatenate([model(torch.from_numpy(normalize(te_px[i:i + 32], spec))).numpy()
                              for i in range(0, len(te_px), 32)])
    print(f"decode + features + head: {time.perf_counter() - t:.1f} s; PyTorch test accuracy "
          f"{100 * (ref.argmax(1) == te_y).mean():.2f} %, logits in [{ref.min():.2f}, {ref.max():.2f}]")
    card = ModelCard(classes=tuple(classes), input=spec, backbone=backbone, weights="imagenet")
    t = time.perf_counter()
    content = convert_float(model, spec.size)
    print(f"float conversion: {time.perf_counter() - t:.1f} s")
    p_ref = softmax(ref)
    acc_ref = float((ref.argmax(1) == te_y).mean())
    rows = [{"variant": "pytorch", "method": "-", "acc": 100 * acc_ref, "drop": 0.0, "agree": 100.0, "sat": 0.0,
             "dprob": 0.0, "ece": 100 * ece(p_ref, te_y), "range": "", "seconds": 0.0, "ms_1t": float("nan")}]
    variants = ([("none", "-", "quantized")] + [("int8", m, "quantized") for m in CALIB_METHODS]
                + [("int8", "minmax", "float")])
    for q, method, output in variants:
        res = export_tflite(model, card, work / f"fid_{q}_{method}_{output}.tflite", q, tr_px[:calib_n],
                            calib_method=method if q == "int8" else "minmax", output=output,
                            float_content=content)
        rt = load(res.path, threads=1)
        raw, out = rt.raw(te_px), rt(te_px)
        probs = softmax(out)
        sat = float(np.isin(raw, (-128, 127)).mean()) if raw.dtype == np.int8 else 0.0
        rng = {} if res.card.quantization is None else res.card.quantization.output_range
        lo_hi = next(iter(rng.values()), None)
        label = f"tflite {q}" + (" (float logits)" if q == "int8" and output == "float" else "")
        rows.append({"variant": label, "method": method, "acc": 100 * float((out.argmax(1) == te_y).mean()),
                     "drop": 100 * (acc_ref - float((out.argmax(1) == te_y).mean())),
                     "agree": 100 * float((out.argmax(1) == ref.argmax(1)).mean()), "sat": 100 * sat,
                     "dprob": float(np.abs(probs - p_ref).max()), "ece": 100 * ece(probs, te_y),
                     "range": f"[{lo_hi[0]:.2f}, {lo_hi[1]:.2f}]" if lo_hi else "",
                     "seconds": res.seconds, "ms_1t": invoke_ms(res.path.read_bytes(), 1, 30)})
    _table(f"{backbone} + head, catsdogs, {n_test} held-out photos ({calib_n} calibration images from train)",
           ["variant", "method", "acc %", "drop pt", "agree %", "saturated %", "max |dprob|", "ECE %",
            "output range", "quantise s", "ms 1 thread"],
           [[r["variant"], r["method"], r["acc"], r["drop"], r["agree"], r["sat"], r["dprob"], r["ece"], r["range"],
             r["seconds"], r["ms_1t"]] for r in rows])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=("speed", "fidelity", "all"), nargs="?", default="all")
    ap.add_argument("--backbone", default="mobilenet_v2")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--calib", type=int, default=100, help="calibration images")
    ap.add_argument("--train", type=int, default=600)
    ap.add_argument("--test", type=int, default=400)
    ap.add_argument("--work", type=Path, default=Path("/tmp/edge_tl_bench_tflite"))
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    out: dict[str, object] = {}
    if a.what in ("speed", "all"):
        out["speed"] = speed(a.backbone, a.size, a.runs, a.calib, a.work)
    if a.what in ("fidelity", "all"):
        out["fidelity"] = fidelity(a.backbone, a.train, a.test, a.calib, a.work)
    if a.json:
        a.json.write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
