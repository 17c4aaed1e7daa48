"""Load: ``edge-tl bench`` and ``edge-tl attack`` on 8 artefacts in one run keep memory bounded.

Trains a small run on generated ``sample`` data, exports all 8 artefacts (ONNX and TFLite x float, fp16,
dynamic, int8), then runs each command twice, on 1 artefact and on all 8, as a child process sampled every
20 ms with psutil: peak RSS of the command's own process ("parent"), peak RSS of any of its child processes
(bench measures each artefact in its own process), and the parent's RSS when each child ended (the "after
each artefact" series). Memory is bounded when the 8-artefact peak is close to the 1-artefact peak (it does
not grow with the number of artefacts) and the after-each series does not climb.

    .venv/bin/python benchmarks/bench_load.py [--backbone tiny_cnn --img-size 32] [--work DIR]
    .venv/bin/python benchmarks/bench_load.py --backbone mobilenet_v2 --img-size 96

Random-init weights (``--weights none``); no ../shared data is used. The machine is shared: timings are noisy,
RSS much less so.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

MiB = 1024 * 1024


@dataclass
class Usage:
    """What one monitored command used."""

    label: str
    seconds: float
    rc: int
    parent_peak: int = 0
    child_peak: int = 0
    children: int = 0
    parent_after_child: list[int] = field(default_factory=list)
    parent_trace: list[int] = field(default_factory=list)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "edge_tl.cli.main", *args]


def monitored(label: str, argv: list[str], cwd: Path, interval: float = 0.02) -> Usage:
    """Run ``argv`` and sample its RSS and its children's every ``interval`` s."""
    t0 = time.perf_counter()
    log = open(cwd / f"{label.replace(' ', '_')}.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, MPLBACKEND="Agg"))
    ps = psutil.Process(proc.pid)
    u = Usage(label, 0.0, 0)
    live: dict[int, psutil.Process] = {}
    while proc.poll() is None:
        try:
            rss = ps.memory_info().rss
            kids = ps.children(recursive=True)
        except psutil.NoSuchProcess:
            break
        u.parent_peak = max(u.parent_peak, rss)
        u.parent_trace.append(rss)
        now = {k.pid: k for k in kids}
        u.parent_after_child.extend(rss for _ in set(live) - set(now))  # children that ended since last sample
        for k in kids:
            if k.pid not in live:
                u.children += 1
            try:
                u.child_peak = max(u.child_peak, k.memory_info().rss)
            except psutil.NoSuchProcess:
                pass
        live = now
        time.sleep(interval)
    u.rc = proc.wait()
    log.close()
    u.seconds = time.perf_counter() - t0
    return u


def prepare(work: Path, backbone: str, size: int) -> list[Path]:
    """Sample data -> a run -> the 8 artefacts; returns their paths."""
    from edge_tl.data.sample import generate_sample

    data = generate_sample(work / "data", per_class=12, size=max(48, size + size // 4))
    run = work / "run"
    if not (run / "model.pt").exists():
        subprocess.run(cli("train", "--data", str(data), "--backbone", backbone, "--weights", "none",
                           "--img-size", str(size), "--epochs", "2", "--quiet", "--out", str(run)),
                       check=True, cwd=work, stdout=subprocess.DEVNULL)
    out = work / "exported"
    paths = sorted(p for p in out.glob("model*") if p.suffix in (".onnx", ".tflite")) if out.exists() else []
    if len(paths) < 8:
        subprocess.run(cli("export", "--model", str(run), "--format", "all", "--quantize", "none,fp16,dynamic,int8",
                           "--no-verify", "--force", "--out", str(out)), check=True, cwd=work,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        paths = sorted(p for p in out.glob("model*") if p.suffix in (".onnx", ".tflite"))
    if len(paths) != 8:
        raise SystemExit(f"expected 8 artefacts in {out}, found {[p.name for p in paths]}")
    return paths


def bench_argv(paths: list[Path]) -> list[str]:
    return cli("bench", *map(str, paths), "--threads", "1", "--min-time", "0.3", "--warmup", "2", "--limit", "12")


def attack_argv(paths: list[Path], out: Path) -> list[str]:
    models = [a for p in paths for a in ("--model", str(p))]
    return cli("attack", *models, "--n", "12", "--attacks", "fgsm,pgd,square", "--eps", "4/255,8/255",
               "--queries", "50", "--steps", "3", "--threads", "1", "--out", str(out))


def table(rows: list[Usage]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="edge-tl under load: peak RSS (MiB)")
    for col in ("command", "rc", "s", "parent peak", "child peak", "children", "parent RSS after each child"):
        t.add_column(col, justify="left" if col in ("command", "parent RSS after each child") else "right")
    for u in rows:
        after = " ".join(f"{x / MiB:.0f}" for x in u.parent_after_child) or "-"
        t.add_row(u.label, str(u.rc), f"{u.seconds:.1f}", f"{u.parent_peak / MiB:.0f}",
                  f"{u.child_peak / MiB:.0f}" if u.child_peak else "-", str(u.children), after)
    Console().print(t)


def verdict(one: Usage, eight: Usage, what: str) -> str:
    """Bounded when 8 artefacts peak within 15 % (or 40 MiB) of 1 artefact, parent and children alike."""
    def close(a: int, b: int) -> bool:
        return b <= max(a * 1.15, a + 40 * MiB)

    ok = close(one.parent_peak, eight.parent_peak) and close(one.child_peak, eight.child_peak)
    after = eight.parent_after_child
    climb = f", parent RSS after each child {min(after) / MiB:.0f}..{max(after) / MiB:.0f} MiB" if after else ""
    return (f"{what}: 1 -> 8 artefacts, parent peak {one.parent_peak / MiB:.0f} -> {eight.parent_peak / MiB:.0f} "
            f"MiB, child peak {one.child_peak / MiB:.0f} -> {eight.child_peak / MiB:.0f} MiB{climb}: "
            f"{'BOUNDED' if ok else 'GROWS with the number of artefacts'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="tiny_cnn")
    ap.add_argument("--img-size", type=int, default=32)
    ap.add_argument("--work", type=Path, default=None, help="Work folder (kept; reused when run again).")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="edge-tl-load-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("EDGE_TL_CACHE", str(work / "cache"))
    print(f"work folder {work}; {args.backbone} at {args.img_size} px, random init; no ../shared data used")
    paths = prepare(work, args.backbone, args.img_size)
    print("artefacts:", ", ".join(p.name for p in paths))
    rows = [monitored("bench x1", bench_argv(paths[:1]), work),
            monitored("bench x8", bench_argv(paths), work),
            monitored("attack x1", attack_argv(paths[:1], work / "att1"), work),
            monitored("attack x8", attack_argv(paths, work / "att8"), work)]
    table(rows)
    for r in rows:
        if r.rc != 0:
            print(f"{r.label} exited {r.rc}: see {work / (r.label.replace(' ', '_') + '.log')}")
    print(verdict(rows[0], rows[1], "bench"))
    print(verdict(rows[2], rows[3], "attack"))
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (shared; times are noisy)")


if __name__ == "__main__":
    main()
