"""Third-party ONNX files often fix the batch size to 1: the runtime runs any number of images through them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_tl.runtimes import load
from helpers.reliability import write_onnx


@pytest.mark.parametrize("batch", [1, 3])
def test_fixed_batch_onnx_runs_any_number_of_images(tmp_path: Path, batch: int) -> None:
    write_onnx(tmp_path, "fixed.onnx", 32, 32, batch=batch)
    write_onnx(tmp_path, "dynamic.onnx", 32, 32)
    pixels = np.random.default_rng(0).integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)
    fixed, dynamic = load(tmp_path / "fixed.onnx", threads=1), load(tmp_path / "dynamic.onnx", threads=1)
    out = fixed(pixels)
    assert out.shape == (7, 2)
    np.testing.assert_allclose(out, dynamic(pixels), rtol=1e-6, atol=1e-6)
    assert fixed(pixels[:1]).shape == (1, 2)
