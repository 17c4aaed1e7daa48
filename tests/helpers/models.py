"""Builders for the model/export/bench tests: a run on its own generated sample, its ONNX export, train configs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from helpers.export_fixtures import build_run


def sample_run(root: Path, run: str = "run", **kw: Any) -> Path:
    """``root/run`` made by :func:`build_run` (``kw``) on 10 images per class generated into ``root/sample``."""
    from edge_tl.data.sample import generate_sample

    return build_run(root / run, generate_sample(root / "sample", per_class=10, size=48), **kw)


def export_onnx(run: Path, modes: Sequence[str], out: Path, reporter: Any = None, **options: Any) -> Any:
    """``export(run, ["onnx"], modes, out, ExportOptions(**options))``: the ExportResult."""
    from edge_tl.export.api import export
    from edge_tl.export.registry import ExportOptions

    return export(run, ["onnx"], list(modes), out, ExportOptions(**options), reporter=reporter)


def train_config(data: Path, out: Path, **kw: Any) -> Any:
    """A TrainConfig for ``tiny_cnn`` at 32 px, random init, seed 0, no workers; ``kw`` sets any other field."""
    from edge_tl.train.api import TrainConfig

    return TrainConfig(**{"data": str(data), "backbone": "tiny_cnn", "weights": "none", "img_size": 32,
                          "out": str(out), "seed": 0, "workers": 0, **kw})
