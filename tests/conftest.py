"""Shared session fixtures: a tiny generated dataset, a tiny trained run, and its exported artefacts.

Everything here is generated; tests never read ../shared. Caches (sample data, feature cache, ONNX backbones)
go to a per-session temp folder so tests never touch the user's ~/.cache.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("edge_tl_cache")
    os.environ["EDGE_TL_CACHE"] = str(root)
    os.environ.setdefault("MPLBACKEND", "Agg")
    return root


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated ImageFolder dataset (the synthetic `sample` generator at 48 px)."""
    from edge_tl.data.sample import generate_sample

    root = tmp_path_factory.mktemp("sample")
    generate_sample(root, per_class=12, size=48)
    return root


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> Path:
    """A `tiny_cnn` run trained 2 epochs (features mode) on `sample_dir` at 32 px."""
    from edge_tl.train.api import TrainConfig, train

    out = tmp_path_factory.mktemp("runs") / "tiny"
    cfg = TrainConfig(data=str(sample_dir), backbone="tiny_cnn", weights="none", img_size=32, epochs=2,
                      batch_size=16, out=str(out), seed=0, workers=0)
    return Path(train(cfg).run_dir)
