"""Attack benchmark: white-box PGD speed on the surrogate and black-box query throughput on ONNX Runtime and
LiteRT, batched (every still-robust image in one call) against one query per call.

Usage::

    .venv/bin/python benchmarks/bench_attacks.py                      # PGD-10, 100 images, 224 px, mobilenet_v2
    .venv/bin/python benchmarks/bench_attacks.py --images 20 --bb-images 8 --queries 20   # quick

Model: ImageNet-pretrained ``mobilenet_v2`` (its 1000-class head; the "labels" are its own clean predictions,
so every image is attacked). Images: ``../shared/data/catsdogs`` when present (said so), else uniform noise.
Black-box: the Square attack (eps 4/255) through an ONNX Runtime session and a LiteRT interpreter of the same
network (fp32), with the normalisation in front exactly as edge-tl's runtimes do it. Queries/s counts every
image sent to the model. The machine is shared by several developers: absolute times are noisy; compare the
ratios measured in one run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "catsdogs"


def load_images(n: int, spec) -> tuple[np.ndarray, str]:
    from edge_tl.data.preprocess import load_batch

    if SHARED.is_dir():
        files = sorted(p for p in SHARED.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        pick = np.random.default_rng(0).permutation(len(files))[:n]
        return load_batch([files[i] for i in pick], spec), f"{len(pick)} photos from {SHARED} (../shared data)"
    return (np.random.default_rng(0).integers(0, 256, (n, spec.size, spec.size, 3), dtype=np.uint8),
            f"{n} uniform-noise images (../shared data not found)")


def onnx_predict(model, spec, threads: int, work: Path) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime as ort
    import torch

    from edge_tl.data.preprocess import normalize

    path = work / "mobilenet_v2.onnx"
    torch.onnx.export(model.eval(), (torch.zeros(1, 3, spec.size, spec.size),), str(path), input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "n"}}, dynamo=False)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return lambda px: sess.run(None, {"input": normalize(px, spec, "NCHW")})[0]


def tflite_predict(model, spec, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    from edge_tl.data.preprocess import normalize
    from edge_tl.export.tflite_export import convert_float

    interp = Interpreter(model_content=convert_float(model, spec.size), num_threads=threads)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    shape: list[int] = []

    def predict(px: np.ndarray) -> np.ndarray:
        x = normalize(px, spec, "NHWC")
        if list(x.shape) != shape:
            interp.resize_tensor_input(inp["index"], list(x.shape))
            interp.allocate_tensors()
            shape[:] = list(x.shape)
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        return interp.get_tensor(out["index"]).copy()

    return predict


def queries_per_s(predict, x: np.ndarray, y: np.ndarray, queries: int, batch: int) -> tuple[float, int]:
    from edge_tl.attacks.blackbox import square
    from edge_tl.attacks.registry import AttackSettings

    calls = []

    def counted(px: np.ndarray) -> np.ndarray:
        calls.append(len(px))
        return predict(px)

    t = time.perf_counter()
    square(counted, x, y, 4 / 255, AttackSettings(queries=queries, batch_size=batch))
    return sum(calls) / (time.perf_counter() - t), len(calls)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=100, help="images for PGD")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--bb-images", type=int, default=16, help="images for the black-box throughput")
    ap.add_argument("--queries", type=int, default=50, help="Square iterations (queries per image)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-tflite", action="store_true")
    args = ap.parse_args()

    import torch
    from rich.console import Console
    from rich.table import Table

    from edge_tl.attacks.pixels import pixel_model, torch_predict
    from edge_tl.attacks.registry import AttackSettings, get_attack
    from edge_tl.models import create_model, get_spec

    torch.set_num_threads(args.threads)
    spec = get_spec("mobilenet_v2").input_spec(args.size)
    net = create_model("mobilenet_v2")
    model = pixel_model(net, spec.mean, spec.std)
    for p in model.parameters():
        p.requires_grad_(False)
    x, source = load_images(args.images, spec)
    console = Console()
    console.print(f"images: {source}; {args.threads} threads; machine shared, times are noisy")
    y = torch_predict(model, 32)(x).argmax(1)

    rows = []
    t = time.perf_counter()
    crafted = get_attack("pgd").run(model, x, y, 4 / 255, AttackSettings(steps=args.steps, batch_size=32))
    dt = time.perf_counter() - t
    fooled = float((torch_predict(model, 32)(crafted.adv).argmax(1) != y).mean())
    rows.append((f"PGD-{args.steps} on PyTorch (eps 4/255)", f"{len(x)} images, {args.size} px", f"{dt:.1f} s",
                 f"{len(x) / dt:.2f} images/s, {1000 * dt / (len(x) * args.steps):.0f} ms per image-step; "
                 f"{100 * fooled:.0f} % fooled"))

    xb, yb = x[: args.bb_images], y[: args.bb_images]
    with tempfile.TemporaryDirectory() as tmp:
        runtimes = [("ONNX Runtime fp32", onnx_predict(net, spec, args.threads, Path(tmp)))]
        if not args.skip_tflite:
            runtimes.append(("LiteRT fp32", tflite_predict(net, spec, args.threads)))
        for name, predict in runtimes:
            for label, batch in (("batched", len(xb)), ("one per call", 1)):
                qps, calls = queries_per_s(predict, xb, yb, args.queries, batch)
                rows.append((f"Square on {name}, {label}", f"{len(xb)} images x <= {args.queries} queries",
                             f"{calls} calls", f"{qps:.1f} queries/s"))

    table = Table(title="edge-tl attack benchmark (mobilenet_v2)")
    for col in ("measurement", "work", "time / calls", "throughput"):
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    console.print(table)


if __name__ == "__main__":
    main()
