"""Interruption: ``kill -9`` at seeded random points during ``edge-tl train`` and ``edge-tl export``.

Each command runs as a real subprocess (its own session, so the whole process group is killed). The kill
points are seeded delays spread over the file-writing part of an uninterrupted run of the same command timed in
the same test, counted from a write the command makes (its first entry in the output folder, or its first
``train_state.pt``), so slow imports on a loaded machine do not push every kill into start-up. After every kill,
every file at a *final* path must load with the reader edge-tl itself uses (checkpoints via
``load_checkpoint``, training state via ``load_state``, cards via ``ModelCard.load``, manifests via
``Manifest.load``, artefacts via ``runtimes.load`` and one inference). Hidden temp files (``.<stem>.*``, left by
:func:`edge_tl._io.atomic_path` when the process dies before it can clean up) are the only other files allowed;
they are collected and printed. ``--resume`` after the kills must reach the same result as the uninterrupted run.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edge_tl.data.sample import generate_sample
from edge_tl.models.checkpoint import load_checkpoint
from helpers.reliability import check_final_files

pytestmark = pytest.mark.slow

SEED = 8  # the kill points are drawn from random.Random(SEED + i)
TRAIN_ARGS = ["--backbone", "tiny_cnn", "--weights", "none", "--img-size", "32", "--mode", "finetune",
              "--epochs", "4", "--batch-size", "16", "--workers", "0", "--seed", "0", "--quiet"]
LEFTOVERS: list[str] = []  # hidden temp files seen after kills, printed at the end of each test


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "edge_tl.cli.main", *args]


def _env() -> dict[str, str]:
    return {"MPLBACKEND": "Agg", **os.environ, "PYTHONUNBUFFERED": "1"}


ANY = "*"  # anchor: the first entry written into the watched folder (temp files count)


def run_to_end(args: list[str], cwd: Path, watch: Path | None = None, anchors: tuple[str, ...] = (ANY,),
               timeout: float = 300) -> tuple[dict[str, float], float]:
    """Run the CLI to completion; return (seconds from the start until each anchor was written, total seconds)."""
    t0 = time.perf_counter()
    log = cwd / f".stderr-{time.time_ns()}.txt"
    seen: dict[str, float] = {}
    with open(log, "w") as err:
        proc = subprocess.Popen(_cmd(*args), cwd=cwd, env=_env(), stdout=subprocess.DEVNULL, stderr=err)
        wall0 = time.time() - 0.05
        while watch is not None and proc.poll() is None and len(seen) < len(anchors):
            seen.update({a: time.perf_counter() - t0 for a in anchors if a not in seen and _written(watch, a, wall0)})
            time.sleep(0.01)
        proc.wait(timeout=max(1.0, timeout - (time.perf_counter() - t0)))
    assert proc.returncode == 0, f"edge-tl {' '.join(args)} failed:\n{log.read_text()[-3000:]}"
    return seen, time.perf_counter() - t0


def _written(watch: Path, anchor: str, since: float) -> bool:
    """Has ``anchor`` (a file name in ``watch``, or ANY entry) been written since ``since`` (wall clock)?"""
    if not watch.is_dir():
        return False
    entries = watch.iterdir() if anchor == ANY else [watch / anchor]
    return any(_mtime(p) >= since for p in entries)


def _mtime(p: Path) -> float:
    try:
        return p.lstat().st_mtime
    except FileNotFoundError:  # absent, or a temp file renamed away between listing and stat
        return 0.0


def run_and_kill(args: list[str], cwd: Path, watch: Path, anchor: str, after: float) -> bool:
    """Start the CLI; ``after`` s after it writes ``anchor`` into ``watch``, SIGKILL its process group.

    Returns True when the kill hit a running process. Timing from a write (not from the start) keeps the kill
    points inside the phase that writes files even when imports are slow on a loaded machine.
    """
    proc = subprocess.Popen(_cmd(*args), cwd=cwd, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    wall0, deadline = time.time() - 0.05, time.perf_counter() + 300
    while proc.poll() is None and time.perf_counter() < deadline and not _written(watch, anchor, wall0):
        time.sleep(0.01)
    try:
        proc.wait(timeout=after)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        return True


def kill_points(span: float, n: int, seed: int, hi: float = 0.9) -> list[float]:
    """``n`` seeded delays in ``[0, hi * span]``, one per equal sub-interval (so they spread out)."""
    rng = random.Random(seed)
    width = hi * span / n
    return [width * (k + rng.random()) for k in range(n)]


def _head(run: Path) -> tuple[dict, np.ndarray, np.ndarray]:
    model, card = load_checkpoint(run / "model.pt")
    return (card.metrics, model.head.weight.detach().numpy().copy(), model.head.bias.detach().numpy().copy())


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_sample(tmp_path_factory.mktemp("interrupt") / "data", per_class=12, size=48)


def test_kill_train_then_resume_matches_uninterrupted(data: Path, tmp_path: Path) -> None:
    """finetune, 4 epochs: 3 fresh runs killed at seeded points, every file left loads; the resumed runs reach
    the same metrics and head weights as an uninterrupted run with the same seed."""
    ref = tmp_path / "ref"
    state = "train_state.pt"
    seen, total = run_to_end(["train", "--data", str(data), *TRAIN_ARGS, "--out", str(ref)], tmp_path, ref,
                             (ANY, state))
    # one kill in set-up (scan, split.json, model), two during the epochs (anchored on the first saved state)
    points = [(ANY, t) for t in kill_points(seen[state] - seen[ANY], 1, SEED)]
    points += [(state, t) for t in kill_points(total - seen[state], 2, SEED + 1)]
    killed: list[Path] = []
    for i, (anchor, t) in enumerate(points):
        run = tmp_path / f"k{i}"
        if run_and_kill(["train", "--data", str(data), *TRAIN_ARGS, "--out", str(run)], tmp_path, run, anchor, t):
            killed.append(run)
        LEFTOVERS.extend(f"train k{i}@{t:.1f}s: {h}" for h in check_final_files(run))
    assert killed, "every kill landed after the command had finished: the timing is off"
    resumable = [r for r in killed if (r / "train_state.pt").exists()]
    assert resumable, "no kill landed after the first training state was saved"
    ref_metrics, ref_w, ref_b = _head(ref)
    ref_hist = json.loads((ref / "history.json").read_text())["history"]
    for run in sorted({resumable[0], resumable[-1]}):
        run_to_end(["train", "--data", str(data), *TRAIN_ARGS, "--out", str(run), "--resume"], tmp_path)
        check_final_files(run)
        metrics, w, b = _head(run)
        for key in ("test_accuracy", "val_accuracy", "best_epoch", "epochs_run"):
            assert metrics[key] == ref_metrics[key], (run.name, key)
        np.testing.assert_allclose(w, ref_w, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(b, ref_b, rtol=1e-4, atol=1e-5)
        hist = json.loads((run / "history.json").read_text())["history"]
        assert [r["val_acc"] for r in hist] == [r["val_acc"] for r in ref_hist]
    print(f"train: {len(killed)} of 3 runs killed, {len(resumable)} resumable, leftover temp files:",
          LEFTOVERS or "none")


@pytest.mark.parametrize(("fmt", "quant", "kills", "rerun"), [("onnx", "int8", 3, True), ("tflite", "none", 2, False)])
def test_kill_export_leaves_no_corrupt_file(tiny_run: Path, tmp_path: Path, fmt: str, quant: str, kills: int,
                                            rerun: bool) -> None:
    """Every file left at a final path after a kill loads and runs; (onnx) a --force rerun then completes."""
    args = ["export", "--model", str(tiny_run), "--format", fmt, "--quantize", quant, "--threads", "1"]
    seen, total = run_to_end([*args, "--out", str(tmp_path / "ref")], tmp_path, tmp_path / "ref")
    expected = sorted(p.name for p in (tmp_path / "ref").iterdir())
    partial: set[str] = set()
    killed = 0
    for i, t in enumerate(kill_points(total - seen[ANY], kills, SEED + 1 + len(fmt))):
        out = tmp_path / f"k{i}"
        killed += run_and_kill([*args, "--out", str(out)], tmp_path, out, ANY, t)
        LEFTOVERS.extend(f"export {fmt}@{t:.1f}s: {h}" for h in check_final_files(out))
        if out.exists():
            partial.update(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert killed >= 1
    assert partial <= set(expected)
    if rerun:  # what a user does after the crash: the same command with --force
        last = tmp_path / f"k{kills - 1}"
        run_to_end([*args, "--out", str(last), "--force"], tmp_path)
        check_final_files(last)
        assert sorted(p.name for p in last.iterdir() if not p.name.startswith(".")) == expected
    print(f"export {fmt}/{quant}: {killed} kills, partial files seen {sorted(partial)}, leftovers:",
          [h for h in LEFTOVERS if h.startswith(f"export {fmt}")] or "none")
