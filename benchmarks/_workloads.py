"""The workloads the benchmark scripts and the pytest-benchmark suites (``benchmarks/suites``) both time: a
trained run, its exported variants, and batch-1 inference on one of them. One definition, so the printed tables
and the saved suite runs measure the same thing. Imported by the scripts next to it (``python benchmarks/NAME.py``
puts this folder on ``sys.path``) and by the suites' conftest."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def train_run(data: Path | None, backbone: str, work: Path, epochs: int | None = None, *,
              img_size: int | None = None, per_class: int = 40, sample_size: int = 64,
              weights: str | None = None) -> Path:
    """A frozen-feature run of ``backbone`` on ``data``; with no data, on generated sample images (``per_class``
    per class at ``sample_size`` px) and, unless ``weights`` is given, ``tiny_cnn``. Returns the run folder."""
    from edge_tl.train.api import TrainConfig, train

    if data is None:
        from edge_tl.data.sample import generate_sample

        data = generate_sample(work / "sample", per_class=per_class, size=sample_size)
        if weights is None:
            backbone = "tiny_cnn"
            print(f"../shared data not found: using generated sample data with {backbone}")
    weights = weights or ("none" if backbone.startswith("tiny") else "default")
    cfg = TrainConfig(data=str(data), backbone=backbone, mode="features", epochs=epochs, seed=0,
                      img_size=img_size, out=str(work / "runs" / f"{backbone}-{data.name}"), force=True,
                      weights=weights)
    return Path(train(cfg).run_dir)


def export_variants(run: Path, out: Path, modes: Sequence[str], *, formats: Sequence[str] = ("onnx",),
                    recipe: str = "float", calib_size: int = 200, verify: bool = True) -> Any:
    """Export ``run`` to every (format, mode) pair in ``out`` (overwriting); a variant failing its parity limits
    is a result to report, not a crash, so the result comes back either way."""
    from edge_tl.errors import ParityError
    from edge_tl.export.api import export
    from edge_tl.export.registry import ExportOptions

    opts = ExportOptions(calib_size=calib_size, output=recipe, force=True, verify=verify)
    try:
        return export(run, list(formats), list(modes), out, opts)
    except ParityError as exc:
        return exc.result  # type: ignore[attr-defined]


def batch1(path: Path, pixels: Any, threads: int = 1, runtime: str | None = None) -> Callable[[], Any]:
    """A zero-argument call that runs the file at ``path`` on one image (``pixels[:1]``, uint8 NHWC) through
    its :class:`~edge_tl.runtimes.base.Runtime` at ``threads``: what a deployed app pays per image."""
    from edge_tl.runtimes import load

    rt = load(path, threads=threads, runtime=runtime)
    one = pixels[:1]
    return lambda: rt(one)
