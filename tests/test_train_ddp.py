"""``torchrun --nproc_per_node 2 edge-tl train``: DistributedDataParallel on 2 CPU processes (gloo)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from edge_tl.card import ModelCard
from edge_tl.train.evaluate import evaluate


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_two_cpu_processes(sample_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs" / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "edge_tl.cli.main", "train", "--data", str(sample_dir),
           "--backbone", "tiny_cnn", "--weights", "none", "--img-size", "32", "--mode", "finetune",
           "--unfreeze", "1", "--epochs", "2", "--batch-size", "8", "--workers", "0", "--quiet",
           "--out", str(out), "--json", str(tmp_path / "result.json")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    n_train = result["split"]["train"]
    # each rank trained on its half; the all-reduced count is the whole train split, every epoch
    assert [r["train_images"] for r in result["history"]] == [n_train, n_train]
    for name in ("model.pt", "card.json", "split.json", "history.json", "curves.png", "confusion.png"):
        assert (out / name).is_file(), name
    assert (out.parent / "latest").resolve() == out.resolve()
    assert not list(out.glob(".*")), "temp files left behind"
    card = ModelCard.load(out / "card.json")
    assert card.metrics["mode"] == "finetune" and card.metrics["epochs_run"] == 2
    # what rank 0 saved is the model that was measured
    assert evaluate(out, progress=False, engine="torch").accuracy == pytest.approx(card.metrics["test_accuracy"])
    assert proc.stdout.count("test split:") == 1, "only rank 0 prints results"
