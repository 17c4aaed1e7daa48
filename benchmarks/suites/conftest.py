"""Session fixtures of the speed suites: one mobilenet_v2 run at 64 px on generated images (random weights:
speed does not depend on their values), exported once to every installed format, float and int8.

Run through ``make bench-save`` / ``make bench-compare`` (pytest-benchmark); ``make test`` never collects this
folder (``testpaths = ["tests"]``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/_workloads.py

BACKBONE, SIZE = "mobilenet_v2", 64
FORMATS = ("onnx", "tflite", "openvino")


@pytest.fixture(scope="session")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("edge_tl_bench")
    os.environ["EDGE_TL_CACHE"] = str(root / "cache")
    return root


@pytest.fixture(scope="session")
def run_dir(work: Path) -> Path:
    from _workloads import train_run

    return train_run(None, BACKBONE, work, img_size=SIZE, per_class=16, sample_size=72, weights="none")


@pytest.fixture(scope="session")
def pixels(run_dir: Path):
    from edge_tl.card import ModelCard
    from edge_tl.data.manifest import manifest_for_card
    from edge_tl.data.preprocess import load_batch

    card = ModelCard.load(run_dir / "card.json")
    return load_batch(manifest_for_card(card, run_dir / "card.json").files("test")[:8], card.input)


@pytest.fixture(scope="session")
def exported(run_dir: Path, work: Path) -> dict[str, Path]:
    """Every installed format, float and int8, by file name (no parity gate: random weights)."""
    from _workloads import export_variants

    from edge_tl.export.api import missing_package

    found: dict[str, Path] = {}
    for fmt in FORMATS:
        if missing_package(fmt) is None:
            res = export_variants(run_dir, work / "exported", ["none", "int8"], formats=[fmt], calib_size=32,
                                  verify=False)
            found.update({a.path.name: a.path for a in res.artifacts})
    return found
