"""Frozen-feature extraction throughput (images/s), end to end (decode, resize/crop, backbone), side by side in
one run: a naive eager loop (PIL + torchvision transforms + PyTorch, batch 32) vs edge-tl's path (shared numpy
preprocessing in JPEG draft mode, decoded in a thread pool overlapping an ONNX Runtime backbone, batch 32), and
edge-tl reading its feature cache. Also how closely the two sets of features agree.

Uses ../shared/data/catsdogs (real photos; skipped with a message when absent), mobilenet_v2 at 224 px.

    .venv/bin/python benchmarks/bench_features.py [--images 320] [--backbone mobilenet_v2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "catsdogs"


def naive_eager(model, files: list[Path], size: int, resize: int, batch: int = 32):
    """The textbook loop: PIL decode, torchvision Resize/CenterCrop/ToTensor/Normalize, PyTorch eager."""
    import numpy as np
    import torch
    from PIL import Image
    from torchvision import transforms as T

    tf = T.Compose([T.Resize(resize), T.CenterCrop(size), T.ToTensor(),
                    T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    out = []
    with torch.inference_mode():
        for i in range(0, len(files), batch):
            x = torch.stack([tf(Image.open(f).convert("RGB")) for f in files[i:i + batch]])
            out.append(model.forward_features(x).numpy())
    return np.concatenate(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=320, help="photos from catsdogs (0 = all)")
    ap.add_argument("--backbone", default="mobilenet_v2")
    ap.add_argument("--json", default=None, help="also write the numbers as JSON")
    args = ap.parse_args()
    if not SHARED.is_dir():
        print(f"skipped: {SHARED} not found (this benchmark needs ../shared/data/catsdogs)")
        return 0
    import numpy as np
    import torch
    from rich.console import Console
    from rich.table import Table

    from edge_tl._cpu import usable_cores
    from edge_tl.models import create_model
    from edge_tl.train.features import extract, onnx_features_path, weights_hash

    files = sorted(p for p in SHARED.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    files = files[: args.images] if args.images else files
    cores = usable_cores()
    torch.set_num_threads(cores)
    model = create_model(args.backbone, num_classes=2).eval()
    spec = model.input_spec
    console = Console(width=130)
    console.print(f"{len(files)} real photos from {SHARED.resolve()}, {args.backbone} at {spec.size} px, "
                  f"{cores} cores; load average {os.getloadavg()[0]:.1f} (shared machine: numbers are noisy)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["EDGE_TL_CACHE"] = tmp
        t0 = time.perf_counter()
        onnx_features_path(model, spec, weights_hash(model.features))
        export_s = time.perf_counter() - t0
        naive_eager(model, files[:32], spec.size, spec.resize)  # warm-up
        t0, c0 = time.perf_counter(), time.process_time()
        ref = naive_eager(model, files, spec.size, spec.resize)
        naive_s, naive_c = time.perf_counter() - t0, time.process_time() - c0
        rows.append(("naive: PIL + torchvision transforms + PyTorch eager", len(files) / naive_s, naive_s, naive_c))
        extract(model, spec, files[:32], engine="onnx", use_cache=False)  # warm-up (session creation)
        t0, c0 = time.perf_counter(), time.process_time()
        ours, _ = extract(model, spec, files, engine="onnx", use_cache=False)
        ours_s, ours_c = time.perf_counter() - t0, time.process_time() - c0
        rows.append(("edge-tl: draft decode in threads + ONNX Runtime", len(files) / ours_s, ours_s, ours_c))
        extract(model, spec, files, engine="onnx")  # fill the cache
        t0, c0 = time.perf_counter(), time.process_time()
        extract(model, spec, files, engine="onnx")
        hit_s, hit_c = time.perf_counter() - t0, time.process_time() - c0
        rows.append(("edge-tl: feature cache hit", len(files) / hit_s, hit_s, hit_c))
        torch_full, _ = extract(model, spec, files[:64], engine="torch", use_cache=False)
    a, b = ours[:, 0], ref
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    same = ours[:64, 0]
    cos_same = (same * torch_full[:, 0]).sum(1) / (np.linalg.norm(same, axis=1) *
                                                    np.linalg.norm(torch_full[:, 0], axis=1))
    t = Table(title=f"feature extraction, {args.backbone} {spec.size} px, batch 32, {cores} threads")
    t.add_column("path")
    t.add_column("images/s", justify="right")
    t.add_column("seconds", justify="right")
    t.add_column("vs naive", justify="right")
    t.add_column("CPU s", justify="right")
    t.add_column(f"img/s if {cores} idle cores", justify="right")
    for name, r, s, c in rows:
        t.add_row(name, f"{r:,.1f}", f"{s:.2f}", f"{r / rows[0][1]:.1f}x", f"{c:.1f}",
                  f"{len(files) * cores / c:,.0f}" if c > 0 else "-")
    console.print(t)
    console.print(f"'img/s if {cores} idle cores' = images / process CPU seconds x cores: what the wall-clock rate "
                  "would be on an idle machine with perfect scaling (robust to other users' load; optimistic)")
    console.print(f"one-off ONNX export of the backbone: {export_s:.1f} s (cached by weights hash)")
    console.print(f"features, ONNX vs PyTorch on the same pixels: cosine min {cos_same.min():.6f}")
    console.print(f"features, edge-tl path vs naive loop (draft-mode decode vs full decode): cosine mean "
                  f"{cos.mean():.4f}, min {cos.min():.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "images": len(files), "backbone": args.backbone, "cores": cores,
            "rows": [{"path": n, "images_per_s": r, "seconds": s, "cpu_seconds": c} for n, r, s, c in rows],
            "export_seconds": export_s, "cosine_onnx_vs_torch_min": float(cos_same.min()),
            "cosine_vs_naive_mean": float(cos.mean()), "cosine_vs_naive_min": float(cos.min())}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
