"""Every registered (format, quantisation) pair, exported from the session's tiny run through `export()`: the file
carries its card (it loads by suffix with no sidecar), predicts the held-out images through its runtime, and its
stored parity result is what the gate measures on it again now. Per-format details live in the format's tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_tl.card import sidecar_path
from edge_tl.errors import ParityError
from edge_tl.export.api import export, missing_package
from edge_tl.export.registry import ExportOptions, get_exporter, valid_pairs
from edge_tl.parity import check_parity
from edge_tl.runtimes import load
from helpers.export_fixtures import has_bf16, heldout_pixels

PAIRS = [tuple(p.split("/")) for p in valid_pairs()]
# a 2-epoch 32 px model: int8 fidelity is not the point here (benchmarks/ measures it on real photos)
LOOSE = ExportOptions(calib_size=16, min_agreement=0.5, max_drop=100.0, max_ece_delta=100.0, max_saturated=1.0)


@pytest.fixture(scope="module")
def exported(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], object]:
    out = tmp_path_factory.mktemp("matrix")
    arts = {}
    for fmt in dict.fromkeys(f for f, _ in PAIRS):
        if missing_package(fmt) is not None:
            continue
        modes = [q for f, q in PAIRS if f == fmt and q != "bf16"]
        precision = ("f32", "bf16") if (fmt, "bf16") in PAIRS and has_bf16() else ("f32",)
        opts = ExportOptions(**{**LOOSE.__dict__, "openvino_precision": precision}) if fmt == "openvino" else LOOSE
        try:
            result = export(tiny_run, [fmt], modes, out, opts)
        except ParityError as exc:  # the files are written and carry their (failed) result: still checked below
            result = exc.result  # type: ignore[attr-defined]
        arts.update({(a.format, a.quantize): a for a in result.artifacts})
    return arts


@pytest.mark.parametrize(("fmt", "quantize"), PAIRS, ids=[f"{f}/{q}" for f, q in PAIRS])
def test_export_load_predict_parity(exported: dict, tiny_run: Path, fmt: str, quantize: str) -> None:
    if missing_package(fmt) is not None:
        pytest.skip(f"{missing_package(fmt)} not installed")
    if quantize == "bf16" and not has_bf16():
        pytest.skip("this CPU has no bf16")
    art = exported[fmt, quantize]
    entry = get_exporter(fmt, quantize)
    assert art.path.name == entry.filename and art.card.format == fmt
    calibrated = art.card.quantization is not None and art.card.quantization.calibration is not None
    assert entry.needs_calibration == (quantize == "int8") == calibrated
    sidecar_path(art.path).unlink()  # the card inside the file is enough
    rt = load(art.path, threads=1)
    assert rt.card == art.card and rt.card.parity is not None
    pixels, labels = heldout_pixels(tiny_run)
    ref = load(tiny_run, threads=1)(pixels)
    out = rt(pixels)
    assert out.shape == ref.shape and np.isfinite(out).all()
    if quantize == "none":
        np.testing.assert_allclose(out, ref, atol=1e-3)
    stored = rt.card.parity  # judged by export on every image but the calibration ones
    assert stored.n >= len(pixels) and stored.quantize == quantize and stored.variant == art.path.name
    again = check_parity(rt, ref, pixels, labels, stored.limits)  # the loaded file, on the held-out split
    if quantize in ("none", "fp16", "bf16"):  # float variants pass their limits wherever they are measured
        assert stored.passed and again.passed, again.failures
