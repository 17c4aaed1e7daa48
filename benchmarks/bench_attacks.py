"""Attack benchmark: the ``edge-tl attack`` command's wall time and peak RSS, early stop against the full run, and
black-box queries/s against the runtime's own batch-32 throughput on the same file, checked against the goals.

Usage::

    .venv/bin/python benchmarks/bench_attacks.py --model exported/model.onnx          # the command at its defaults
    .venv/bin/python benchmarks/bench_attacks.py --model exported/model.onnx --skip-command --images 32 --repeat 3
    .venv/bin/python benchmarks/bench_attacks.py --model exported/model.onnx --compare -- --n 10 --queries 100

1. ``edge-tl attack --model M [flags after --]`` in a subprocess: wall time, peak RSS of that child
   (``os.wait4``), and the result's rows (robust accuracy per attack and eps, worst case included).
   ``--compare`` runs the same flags once more with ``--no-early-stop`` (every attack on every image at every
   eps): the speed-up of early stop, and whether the worst-case rows agree.
2. In process, through the same :class:`~edge_tl.runtimes.base.Runtime` the command uses: its batch-32
   throughput as ``edge-tl bench`` measures it (the engine alone on a tensor prepared once; the runtime's own
   call, normalisation included, is printed beside it), then HopSkipJump and Square on
   ``--images`` images of the model's test split with ``--queries`` each; queries/s counts every row sent to
   the runtime, and its ratio to the batch-32 throughput is the share of attack time spent in the runtime.

The images are the model card's test split (the run folder the card names). The machine is often shared: the
load average is printed next to the numbers; compare ratios measured in one run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GOAL_WALL_S = 300.0
GOAL_RSS_MB = 1536.0
GOAL_QPS_SHARE = 0.8


def run_command(model: Path, extra: list[str], threads: int, out: Path) -> dict:
    """``edge-tl attack`` in a child process: wall time, the child's own peak RSS, its JSON report."""
    cmd = [sys.executable, "-m", "edge_tl.cli.main", "attack", "--model", str(model), "--out", str(out / "attack"),
           "--threads", str(threads), "--json", str(out / "attack.json"), *extra]
    t = time.perf_counter()
    with open(out / "attack.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
        _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = (out / "attack.log").read_text().strip().splitlines()[-1:]
        raise SystemExit(f"attack failed ({code}): {tail}")
    return {"cmd": " ".join(cmd[2:]), "wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024,
            "report": json.loads((out / "attack.json").read_text())}


def throughput(rt, x: np.ndarray, seconds: float = 10.0, engine: bool = True) -> float:
    """Images/s of ``rt`` on the uint8 batch ``x``: the median call of a timed loop. ``engine``: the call
    ``edge-tl bench`` times (the engine alone on a tensor prepared once); else the runtime's ``__call__``
    (normalisation included)."""
    from edge_tl.bench.measure import time_loop
    from edge_tl.runtimes.timing import timed_call

    call = timed_call(rt, x) if engine else None
    with call.context() if call else contextlib.nullcontext():
        times = time_loop(call.fn if call else lambda: rt(x), seconds, warmup=2)
    return len(x) / float(np.median(times))


class Counted:
    """``rt`` with every row it is sent counted: pixels through ``__call__`` and, as the command's attacks use
    it, tensors in the runtime's own input format through ``run_tensor``."""

    def __init__(self, rt) -> None:
        self.rt, self.card, self.layout, self.rows = rt, rt.card, rt.layout, []

    def __call__(self, px: np.ndarray) -> np.ndarray:
        self.rows.append(len(px))
        return self.rt(px)

    def run_tensor(self, x: np.ndarray) -> np.ndarray:
        self.rows.append(len(x))
        return self.rt.run_tensor(x)


def attack_rate(name: str, rt, x: np.ndarray, y: np.ndarray, queries: int, batch: int) -> dict:
    """One black-box attack on the correctly classified images of ``x``: rows sent, calls, seconds."""
    from edge_tl.attacks.registry import AttackSettings, get_attack

    counted = Counted(rt)
    rows = counted.rows
    pred = rt(x).argmax(1)
    keep = pred == y
    seeds = None
    if name == "hopskipjump":  # as the command does: start each image from an image classified otherwise
        pool = [np.flatnonzero(pred != y[i]) for i in np.flatnonzero(keep)]
        seeds = None if any(p.size == 0 for p in pool) else np.stack([x[p[0]] for p in pool])
    x, y = x[keep], y[keep]
    settings = AttackSettings(queries=queries, batch_size=batch)
    t = time.perf_counter()
    kw = {"init_images": seeds, "stop_at": 1 / 255} if name == "hopskipjump" else {}
    eps = None if name == "hopskipjump" else 2 / 255
    crafted = get_attack(name).run(counted, x, y, eps, settings, None, **kw)
    dt = time.perf_counter() - t
    assert int(crafted.queries.sum()) == sum(rows), "query counts must equal the rows sent"
    return {"attack": name, "images": len(x), "queries": int(sum(rows)), "calls": len(rows), "seconds": dt,
            "queries_per_s": sum(rows) / dt}


def _worst(rep: dict) -> list[tuple[float, float]]:
    return [(round(r["eps"] * 255, 3), round(r["robust_accuracy"], 4)) for r in rep["results"]
            if r["attack"] == "worst-case"]


def _result_table(title: str, rep: dict):
    from rich.table import Table

    table = Table(title=title)
    for col in ("model", "attack", "eps", "n", "fooled", "robust%", "success%", "median queries", "queries/s"):
        table.add_column(col)
    for r in rep["results"]:
        table.add_row(r["model"], r["attack"], f"{r['eps'] * 255:g}", str(r["n_attacked"]),
                      "-" if r.get("n_fooled") is None else str(r["n_fooled"]), f"{100 * r['robust_accuracy']:.1f}",
                      f"{100 * r['success_rate']:.1f}", "-" if r["median_queries"] is None else
                      f"{r['median_queries']:.0f}", "-" if r.get("queries_per_s") is None else
                      f"{r['queries_per_s']:.1f}")
    return table


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, required=True, help="an exported .onnx / .tflite (or a run folder)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--images", type=int, default=32, help="images for the queries/s measurement")
    ap.add_argument("--queries", type=int, default=150, help="query budget per image for queries/s")
    ap.add_argument("--skip-command", action="store_true", help="only the in-process queries/s part")
    ap.add_argument("--compare", action="store_true", help="also run the flags with --no-early-stop")
    ap.add_argument("--repeat", type=int, default=1,
                    help="measure queries/s this many times, alternating the attacks; the goal is judged on the median")
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
    load_at = lambda: Path("/proc/loadavg").read_text().split()[0]
    console.print(f"model {args.model}; {args.threads} threads; {os.cpu_count()} cores; load average "
                  f"{load_at()} (a shared machine: times are noisy; ratios within one run are not)")
    goals: list[tuple[str, str, str, bool | None]] = []
    if not args.skip_command:
        (out / "early").mkdir(exist_ok=True)
        res = run_command(args.model, extra, args.threads, out / "early")
        rep = res["report"]
        cfg = rep["config"]
        console.print(f"[bold]edge-tl {res['cmd']}[/]: {res['wall_s']:.0f} s wall, peak RSS {res['peak_rss_mb']:.0f} "
                      f"MB, {rep['n_images']} images, attacks {', '.join(cfg['attacks'])}, eps "
                      f"{[round(e * 255, 2) for e in cfg['eps']]}/255, {cfg['queries']} queries (load {load_at()})")
        console.print(_result_table("robust accuracy % (early stop: rows cumulative along the attack order)", rep))
        for note in rep["notes"]:
            console.print(f"note: {note}", highlight=False)
        label = "default command" if not extra else "command " + " ".join(extra)
        goals.append((f"{label}: wall time", f"<= {GOAL_WALL_S:.0f} s", f"{res['wall_s']:.0f} s",
                      res["wall_s"] <= GOAL_WALL_S if not extra else None))
        goals.append((f"{label}: peak RSS", f"<= {GOAL_RSS_MB:.0f} MB", f"{res['peak_rss_mb']:.0f} MB",
                      res["peak_rss_mb"] <= GOAL_RSS_MB))
        if args.compare:
            (out / "full").mkdir(exist_ok=True)
            full = run_command(args.model, [*extra, "--no-early-stop"], args.threads, out / "full")
            console.print(f"--no-early-stop: {full['wall_s']:.0f} s wall, peak RSS {full['peak_rss_mb']:.0f} MB "
                          f"(load {load_at()})")
            console.print(_result_table("robust accuracy % (--no-early-stop: every attack alone)", full["report"]))
            same = _worst(full["report"]) == _worst(rep)
            goals.append(("early stop: speed-up over --no-early-stop", "> 1x",
                          f"{full['wall_s'] / res['wall_s']:.1f}x", full["wall_s"] > res["wall_s"]))
            goals.append(("early stop: worst-case rows", "= --no-early-stop's",
                          "equal" if same else f"{_worst(rep)} vs {_worst(full['report'])}", same))

    rt = load(args.model, threads=args.threads)
    data = inputs.load_data(rt.card, Path(rt.path), None, args.images, 0)
    x32 = np.concatenate([data.images] * (32 // len(data.images) + 1))[:32]
    rows = []
    for _ in range(max(1, args.repeat)):
        for name in ("square", "hopskipjump"):  # throughput just before and after each attack: the load drifts
            before = throughput(rt, x32)
            r = attack_rate(name, rt, data.images, data.labels, args.queries, 32)
            rows.append((name, r, before, throughput(rt, x32), throughput(rt, x32, engine=False)))
    table = Table(title=f"black-box queries/s on {rt.name} vs its batch-32 throughput as edge-tl bench times it "
                        f"(the engine alone), just before and after each attack (load {load_at()})")
    for col in ("attack", "images", "queries", "calls", "rows/call", "seconds", "queries/s", "bench batch-32 img/s",
                "% of bench", "runtime call img/s"):
        table.add_column(col)
    shares: dict[str, list[float]] = {}
    for name, r, before, after, call in rows:
        tp = max(before, after)  # the higher one: the conservative share
        share = r["queries_per_s"] / tp
        shares.setdefault(name, []).append(share)
        table.add_row(name, str(r["images"]), str(r["queries"]), str(r["calls"]), f"{r['queries'] / r['calls']:.1f}",
                      f"{r['seconds']:.1f}", f"{r['queries_per_s']:.1f}", f"{before:.1f} / {after:.1f}",
                      f"{100 * share:.0f}", f"{call:.1f}")
    console.print(table)
    for name, got in shares.items():
        med = float(np.median(got))
        spread = f" (median of {len(got)}: {', '.join(f'{100 * g:.0f}' for g in got)})" if len(got) > 1 else ""
        goals.append((f"{name} queries/s", f">= {100 * GOAL_QPS_SHARE:.0f} % of bench's batch-32 throughput",
                      f"{100 * med:.0f} %{spread}", med >= GOAL_QPS_SHARE))
    summary = Table(title="goals")
    for col in ("goal", "target", "measured", "met"):
        summary.add_column(col)
    for goal, target, got, ok in goals:
        summary.add_row(goal, target, got, "-" if ok is None else ("yes" if ok else "NO"))
    console.print(summary)
    tmp.cleanup()


if __name__ == "__main__":
    main()
