"""int8 fidelity of the weight preparations (none / bias correction / CLE / both) on real photos, both formats.

For each backbone run and each ``--int8-prep`` choice, exports full int8 to ONNX and TFLite (no float fallback,
so the quantiser's own result is measured) and computes the parity gate's figures on the gate's images: top-1
agreement with the float model (95 % Wilson interval), accuracy drop with its resolution, KL, and 1-thread
latency. The gate judges every image the run did not calibrate on (800 of catsdogs' 1,000 with 200 calibration
images); ``--seeds 0,1`` pools two calibration draws, so that more than 1,000 judgments back each row.
``--preps`` takes every ``--int8-prep`` choice (``qat`` included); ``--onnx-weights`` takes one or more ONNX
int8 weight schemes, comma-separated (``full``, ``reduced`` = 7-bit, ``u8``; default ``auto``: 7-bit on a CPU
without VNNI), and each row says which it got.

Needs trained runs (``edge-tl train --data ../shared/data/catsdogs --backbone B --out RUN``); uses real photos from
``../shared/data`` through those runs. Usage::

    python benchmarks/bench_int8_fidelity.py --run mobilenet_v2=/tmp/runs/mnv2 --preps none,bias,cle+bias
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np


def _latency_ms(path: Path) -> float:
    """The engine call at batch 1 and 1 thread (``runtimes.timing.batch1_ms``): what bench and the budget time."""
    from edge_tl.runtimes import load
    from edge_tl.runtimes.timing import batch1_ms

    return batch1_ms(load(path, threads=1), runs=60, min_time=1.0)


def _float_dir(run: Path, formats: list[str], root: Path) -> Path:
    """The run's float artefacts, exported once and copied into each variant's folder (the driver reuses them)."""
    from edge_tl.export.api import export
    from edge_tl.export.registry import ExportOptions

    out = root / "float"
    if not out.exists():
        # ONNX fp32 is the reference of every format
        export(run, list(dict.fromkeys(["onnx", *formats])), ["none"], out, ExportOptions(verify=False))
    return out


def measure(run: Path, prep: str, seed: int, formats: list[str], calib_size: int, root: Path,
            cache: dict, onnx_weights: str = "auto") -> list[dict]:
    """int8 of every format with ``prep``, judged like the gate on every image the calibration did not use."""
    import shutil

    from edge_tl.card import ModelCard
    from edge_tl.data.manifest import manifest_for_card
    from edge_tl.export.api import export
    from edge_tl.export.calibration import calibration_files
    from edge_tl.export.onnx_quant import scheme_of
    from edge_tl.export.registry import ExportOptions
    from edge_tl.parity import check_parity, fidelity_set, limits_for
    from edge_tl.runtimes import load

    card = ModelCard.load(run / "card.json")
    manifest = manifest_for_card(card, run / "card.json")
    floats = _float_dir(run, formats, root)
    key = (str(run), seed)
    if key not in cache:  # the images and the float reference (ONNX fp32 = the PyTorch model to 1e-3)
        fid = fidelity_set(manifest, card.input, exclude=calibration_files(manifest, calib_size, "train", seed))
        cache[key] = (fid, load(floats / "model.onnx", threads=2)(fid.pixels))
    fid, ref = cache[key]
    out = root / f"{prep}-{seed}-{onnx_weights}"
    shutil.copytree(floats, out, dirs_exist_ok=True)
    opts = ExportOptions(int8_prep=prep, fallback=False, verify=False, seed=seed, calib_size=calib_size,
                         onnx_weights=onnx_weights)
    result = export(run, formats, ["int8"], out, opts)
    rows = []
    for art in result.artifacts:
        rt = load(art.path, threads=2)
        par = check_parity(rt, ref, fid.pixels, fid.labels, limits_for(art.format, "int8"), images=fid.description)
        flips = round((1 - par.agreement) * par.n)
        weights = (scheme_of(art.card.quantization) if art.format == "onnx" else None) or "int8"
        rows.append({"prep": prep, "seed": seed, "format": art.format, "weights": weights, "n": par.n, "flips": flips,
                     "agreement": par.agreement, "ci": par.agreement_ci, "drop": par.drop,
                     "resolution": par.resolution, "kl": par.kl, "float_acc": par.reference_accuracy,
                     "int8_acc": par.accuracy, "ms": _latency_ms(art.path), "images": fid.description,
                     "prep_record": None if art.card.quantization is None or art.card.quantization.prep is None
                     else art.card.quantization.prep.to_json()})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="append", required=True, help="NAME=RUN_DIR (a trained run)")
    ap.add_argument("--preps", default="none,bias,cle,cle+bias")
    ap.add_argument("--formats", default="onnx,tflite")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--calib-size", type=int, default=200)
    ap.add_argument("--onnx-weights", default="auto",
                    help="ONNX int8 weight schemes, comma-separated: auto, full, reduced, u8 (auto: 7-bit on a CPU "
                         "without VNNI); the other formats are built once, with the first")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--work", type=Path, default=None, help="where the artefacts go (default: a temp folder)")
    args = ap.parse_args()
    from edge_tl.parity import wilson_interval

    rows: list[dict] = []
    cache: dict = {}
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_int8_fidelity_"))
    for spec in args.run:
        name, _, path = spec.partition("=")
        for prep in args.preps.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                for i, weights in enumerate(args.onnx_weights.split(",")):
                    formats = [f for f in args.formats.split(",") if i == 0 or f == "onnx"]
                    if not formats:
                        break
                    for r in measure(Path(path), prep, seed, formats, args.calib_size, work / name, cache, weights):
                        rows.append({"backbone": name, **r})
                        print(json.dumps({k: v for k, v in rows[-1].items() if k != "prep_record"}), flush=True)
    print("\n| backbone | format (weights) | prep | images judged | flips | agreement % (95 % CI) | drop pt (1 img) "
          "| KL | ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    keys = sorted({(r["backbone"], f"{r['format']} ({r['weights']})", r["prep"]) for r in rows})
    for key in keys:
        grp = [r for r in rows if (r["backbone"], f"{r['format']} ({r['weights']})", r["prep"]) == key]
        n, flips = sum(r["n"] for r in grp), sum(r["flips"] for r in grp)
        lo, hi = wilson_interval(n - flips, n)
        drop = sum(r["drop"] * r["n"] for r in grp) / n
        print(f"| {key[0]} | {key[1]} | {key[2]} | {n} | {flips} | {100 * (1 - flips / n):.2f} "
              f"({100 * lo:.2f}-{100 * hi:.2f}) | {drop:.2f} ({100 / n:.2f}) | "
              f"{np.mean([r['kl'] for r in grp]):.2e} | {np.median([r['ms'] for r in grp]):.2f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
