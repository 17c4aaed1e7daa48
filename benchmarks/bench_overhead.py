"""Overhead of ``edge-tl bench`` against a bare inference loop (ONNX Runtime or OpenVINO), MobileNetV2, batch 1.

Target: bench's p50 within 5 % of a bare loop timed in the same process and run. Each round times
both, in alternating order, so load from other users that drifts hits both; the median of the per-round
ratios is reported. Also reports bench's fixed cost per measurement (spawn + imports + session + first run + accuracy
pass), which decides how long a default bench of 6 artefacts x 2 thread counts takes.

    .venv/bin/python benchmarks/bench_overhead.py [--model mobilenet_v2] [--threads 1] [--min-time 2] [--rounds 6]
        [--runtime onnxruntime|openvino]

With ``--runtime openvino`` the same ONNX file is compiled by OpenVINO (f32, one stream, latency hint) and the
bare loop is ``InferRequest.infer()`` on a tensor set once, as ``benchmark_app`` does.

Random-initialised weights (latency does not depend on their values); no ../shared data is used.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def export_onnx(name: str, folder: Path, size: int = 224) -> Path:
    """A float ONNX export of a random-init ``name`` with an edge-tl card in its metadata."""
    import onnx
    import torch

    from edge_tl.card import CARD_KEY, ModelCard
    from edge_tl.models import create_model, get_spec

    model = create_model(name, num_classes=2, weights="none", img_size=size).eval()
    spec = get_spec(name).input_spec(size)
    path = folder / f"{name}.onnx"
    torch.onnx.export(model, (torch.zeros(1, 3, size, size),), str(path), input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}}, dynamo=False)
    proto = onnx.load(str(path))
    card = ModelCard(classes=("cat", "dog"), input=spec, backbone=name, weights="none", format="onnx")
    entry = proto.metadata_props.add()
    entry.key, entry.value = CARD_KEY, card.dumps()
    onnx.save(proto, str(path))
    return path


def bare_p50(path: Path, x: np.ndarray, threads: int, min_time: float, warmup: int) -> float:
    """The loop a user would write: one session, ``session.run`` timed with perf_counter, median in ms."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    feed, out = {sess.get_inputs()[0].name: x}, [sess.get_outputs()[0].name]
    for _ in range(warmup):
        sess.run(out, feed)
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < min_time or len(times) < 5:
        a = time.perf_counter()
        sess.run(out, feed)
        times.append(time.perf_counter() - a)
    del sess
    return float(np.median(times) * 1e3)


def bare_openvino_p50(path: Path, x: np.ndarray, threads: int, min_time: float, warmup: int) -> float:
    """The OpenVINO loop a user would write: one compiled model, one request, ``infer()`` timed, median in ms."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    model.reshape({model.inputs[0]: list(x.shape)})
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads,
                                                 "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
                                                 "ENABLE_CPU_PINNING": False})
    req = compiled.create_infer_request()
    req.set_input_tensor(0, ov.Tensor(np.ascontiguousarray(x)))
    for _ in range(warmup):
        req.infer()
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < min_time or len(times) < 5:
        a = time.perf_counter()
        req.infer()
        times.append(time.perf_counter() - a)
    return float(np.median(times) * 1e3)


BARE = {"onnxruntime": bare_p50, "openvino": bare_openvino_p50}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mobilenet_v2")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--runtime", choices=sorted(BARE), default="onnxruntime")
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table

    from edge_tl.bench.env import fingerprint, read_loadavg
    from edge_tl.bench.measure import MeasureJob, run_job
    from edge_tl.bench.stats import summarize
    from edge_tl.data.preprocess import normalize
    from edge_tl.runtimes.base import load

    con = Console()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = export_onnx(args.model, folder)
        card = load(path, threads=1).card
        rng = np.random.default_rng(0)
        pixels = rng.integers(0, 256, size=(8, card.input.size, card.input.size, 3), dtype=np.uint8)
        np.savez(folder / "eval.npz", pixels=pixels, labels=np.zeros(8, dtype=np.int64))
        x = normalize(pixels[:1], card.input, "NCHW")
        bare, ours, fixed = [], [], []
        for r in range(args.rounds):
            # alternate which goes first, so load that drifts during a round favours neither
            for which in (("bare", "bench") if r % 2 == 0 else ("bench", "bare")):
                if which == "bare":
                    bare.append(BARE[args.runtime](path, x, args.threads, args.min_time, args.warmup))
                    continue
                job = MeasureJob(path=str(path), threads=args.threads, data=str(folder / "eval.npz"),
                                 min_time=args.min_time, warmup=args.warmup, accuracy=True,
                                 runtime=args.runtime)
                t = time.perf_counter()
                m = run_job(job)
                wall = time.perf_counter() - t
                if m.error:
                    con.print(f"[red]bench failed: {m.error}")
                    return 1
                ours.append(summarize(m.samples).p50.value)
                fixed.append(wall - float(m.samples.sum()))
            con.print(f"round {r + 1}: bare {bare[-1]:.3f} ms, bench {ours[-1]:.3f} ms "
                      f"(loop={m.loop}, {len(m.samples)} runs), load {read_loadavg()}")
    b, o = statistics.median(bare), statistics.median(ours)
    paired = statistics.median(x / y for x, y in zip(ours, bare))
    table = Table(title=f"bench overhead: {args.model} {args.runtime} fp32, batch 1, {args.threads} thread(s)")
    for col in ("loop", "p50 ms (median of rounds)", "rounds"):
        table.add_column(col)
    table.add_row(f"bare {args.runtime} loop", f"{b:.3f}", ", ".join(f"{v:.3f}" for v in bare))
    table.add_row("edge-tl bench (spawned child)", f"{o:.3f}", ", ".join(f"{v:.3f}" for v in ours))
    table.add_row("ratio bench / bare, paired by round", f"{paired:.3f}",
                  "median of per-round ratios; target <= 1.05")
    table.add_row("fixed cost per measurement, s", f"{statistics.median(fixed):.2f}",
                  "spawn + imports + session + warm-up + accuracy pass (8 images)")
    table.add_row("6 artefacts x 2 threads, est. s", f"{12 * (statistics.median(fixed) + args.min_time):.0f}",
                  "ONNX-only estimate; PyTorch children add ~3 s each for `import torch`")
    con.print(table)
    env = fingerprint()
    con.print(f"host: {env.summary()}")
    con.print("data: random pixels (no ../shared data used). This machine is shared with other developers: "
              "absolute times are noisy; the ratio is what this script checks.")
    return 0 if paired <= 1.05 else 1


if __name__ == "__main__":
    sys.exit(main())
