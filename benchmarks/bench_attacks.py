"""Attack benchmark: the ``edge-tl attack`` command's wall time and peak RSS, and black-box queries/s against
the runtime's own batch throughput on the same file.

Usage::

    .venv/bin/python benchmarks/bench_attacks.py --model exported/model.onnx          # the command at its defaults
    .venv/bin/python benchmarks/bench_attacks.py --model exported/model.onnx --skip-command --images 8 --queries 200
    .venv/bin/python benchmarks/bench_attacks.py --model exported/model.onnx -- --n 20 --queries 300   # other flags

1. ``edge-tl attack --model M [flags after --]`` in a subprocess: wall time, peak RSS (``ru_maxrss`` of the
   child), and the result's rows (robust accuracy per attack and eps, worst case included).
2. In process, through the same :class:`~edge_tl.runtimes.base.Runtime` the command uses: its batch-32
   throughput (images/s over repeated calls, as ``edge-tl bench`` measures a batch), then HopSkipJump and Square
   on ``--images`` images of the model's test split with ``--queries`` each; queries/s counts every row sent to
   the runtime, and the ratio to the batch throughput is the share of attack time spent in the runtime.

The images are the model card's test split (the run folder the card names); the machine is often shared: say
so next to any number, and compare ratios measured in one run.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def run_command(model: Path, extra: list[str], threads: int, out: Path) -> dict:
    cmd = [sys.executable, "-m", "edge_tl.cli.main", "attack", "--model", str(model), "--out", str(out / "attack"),
           "--threads", str(threads), "--json", str(out / "attack.json"), *extra]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if proc.returncode != 0:
        raise SystemExit(f"attack failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    return {"cmd": " ".join(cmd[2:]), "wall_s": wall, "peak_rss_mb": rss_mb,
            "report": json.loads((out / "attack.json").read_text()), "log": proc.stderr}


def throughput(rt, x: np.ndarray, seconds: float = 10.0) -> float:
    rt(x)
    t, k = time.perf_counter(), 0
    while time.perf_counter() - t < seconds or k < 3:
        rt(x)
        k += 1
    return len(x) * k / (time.perf_counter() - t)


def attack_rate(name: str, rt, x: np.ndarray, y: np.ndarray, queries: int, batch: int) -> dict:
    from edge_tl.attacks.registry import AttackSettings, get_attack

    rows: list[int] = []

    def counted(px: np.ndarray) -> np.ndarray:
        rows.append(len(px))
        return rt(px)

    pred = rt(x).argmax(1)
    keep = pred == y
    seeds = None
    if name == "hopskipjump":  # as the command does: start each image from an image classified otherwise
        pool = [np.flatnonzero(pred != y[i]) for i in np.flatnonzero(keep)]
        seeds = None if any(p.size == 0 for p in pool) else np.stack([x[p[0]] for p in pool])
    x, y = x[keep], y[keep]
    settings = AttackSettings(queries=queries, batch_size=batch)
    t = time.perf_counter()
    kw = {"init_images": seeds} if name == "hopskipjump" else {}
    eps = None if name == "hopskipjump" else 4 / 255
    crafted = get_attack(name).run(counted, x, y, eps, settings, None, **kw)
    dt = time.perf_counter() - t
    assert int(crafted.queries.sum()) == sum(rows)
    return {"attack": name, "images": len(x), "queries": int(sum(rows)), "calls": len(rows), "seconds": dt,
            "queries_per_s": sum(rows) / dt}


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, required=True, help="an exported .onnx / .tflite (or a run folder)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--images", type=int, default=8, help="images for the queries/s measurement")
    ap.add_argument("--queries", type=int, default=300, help="query budget per image for queries/s")
    ap.add_argument("--skip-command", action="store_true", help="only the in-process queries/s part")
    ap.add_argument("--out", type=Path, default=None, help="folder for the command's outputs [default: a temp dir]")
    args = ap.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    from edge_tl.attacks import inputs
    from edge_tl.runtimes import load

    console = Console()
    tmp = tempfile.TemporaryDirectory()
    out = args.out or Path(tmp.name)
    out.mkdir(parents=True, exist_ok=True)
    console.print(f"model {args.model}; {args.threads} threads; machine load {Path('/proc/loadavg').read_text()[:14]}"
                  "(a shared machine: times are noisy)")
    if not args.skip_command:
        res = run_command(args.model, extra, args.threads, out)
        rep = res["report"]
        console.print(f"[bold]edge-tl {res['cmd']}[/]: {res['wall_s']:.0f} s wall, peak RSS {res['peak_rss_mb']:.0f} MB,"
                      f" {rep['n_images']} images, attacks {', '.join(rep['config']['attacks'])}, "
                      f"eps {[round(e * 255, 2) for e in rep['config']['eps']]}/255, {rep['config']['queries']} queries")
        table = Table(title="robust accuracy %")
        for col in ("model", "attack", "eps", "robust%", "success%", "median queries", "queries/s"):
            table.add_column(col)
        for r in rep["results"]:
            table.add_row(r["model"], r["attack"], f"{r['eps'] * 255:g}", f"{100 * r['robust_accuracy']:.1f}",
                          f"{100 * r['success_rate']:.1f}", "-" if r["median_queries"] is None else
                          f"{r['median_queries']:.0f}", "-" if r.get("queries_per_s") is None else
                          f"{r['queries_per_s']:.1f}")
        console.print(table)

    rt = load(args.model, threads=args.threads)
    data = inputs.load_data(rt.card, Path(rt.path), None, args.images, 0)
    x32 = np.concatenate([data.images] * (32 // len(data.images) + 1))[:32]
    tp = throughput(rt, x32)
    table = Table(title=f"black-box queries/s on {rt.name} vs its batch-32 throughput ({tp:.1f} images/s)")
    for col in ("attack", "images", "queries", "calls", "seconds", "queries/s", "% of batch-32 throughput"):
        table.add_column(col)
    for name in ("hopskipjump", "square"):
        r = attack_rate(name, rt, data.images, data.labels, args.queries, 32)
        table.add_row(name, str(r["images"]), str(r["queries"]), str(r["calls"]), f"{r['seconds']:.1f}",
                      f"{r['queries_per_s']:.1f}", f"{100 * r['queries_per_s'] / tp:.0f}")
    console.print(table)
    tmp.cleanup()


if __name__ == "__main__":
    main()
