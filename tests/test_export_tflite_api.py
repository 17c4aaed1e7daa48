"""TFLite through the exporter registry and the export driver, on the session's tiny trained run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_tl.card import sidecar_path
from edge_tl.errors import ConfigError, ParityError
from edge_tl.export.registry import ExportOptions, get_exporter
from edge_tl.runtimes import load
from helpers.tflite import needs

pytestmark = needs("litert_torch", "ai_edge_quantizer")


@pytest.fixture(scope="module")
def exported(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    from edge_tl.export.api import export

    out = tmp_path_factory.mktemp("exported")
    try:
        result = export(tiny_run, ["tflite"], ["int8"], out, ExportOptions(calib_size=24, output="quantized"))
    except ParityError as exc:  # a 2-epoch tiny model may miss the int8 limits: the files are still written
        result = exc.result  # type: ignore[attr-defined]
    return out, result


def test_driver_writes_float_and_int8_with_parity(tiny_run: Path, exported: tuple[Path, object]) -> None:
    out, result = exported
    assert {a.path.name for a in result.artifacts} == {"model.tflite", "model_int8.tflite"}
    rt = load(out / "model_int8.tflite")
    assert rt.card.parity is not None and rt.card.quantization.calibration.images == 24
    assert rt.card.quantization.calibration.split == "train"
    assert rt.card.source_sha256 is not None and rt.card.input.dtype == "uint8" and rt.card.output.dtype == "uint8"
    sidecar_path(out / "model.tflite").unlink()  # the embedded card alone is enough
    f = load(out / "model.tflite")
    assert f.card.parity is not None and f.card.parity.passed
    torch_rt = load(tiny_run)
    pix = np.random.default_rng(0).integers(0, 256, (8, f.card.input.size, f.card.input.size, 3), dtype=np.uint8)
    np.testing.assert_allclose(f(pix), torch_rt(pix), atol=1e-4)


def _request(tiny_run: Path, float_path: Path, out: Path, **opts: object):
    from edge_tl.export.registry import ExportRequest
    from edge_tl.models.checkpoint import load_checkpoint

    model, card = load_checkpoint(tiny_run / "model.pt")
    size = card.input.size
    pixels = np.random.default_rng(1).integers(0, 256, (16, size, size, 3), dtype=np.uint8)
    return ExportRequest(model=model, card=card, checkpoint=tiny_run / "model.pt", source_sha256="0" * 64,
                         out_path=out, format="tflite", quantize="int8", options=ExportOptions(**opts),
                         float_path=float_path, calibration=lambda batch: iter([pixels[:batch], pixels[batch:]]))


def test_float_logits_option(tiny_run: Path, exported: tuple[Path, object], tmp_path: Path) -> None:
    req = _request(tiny_run, exported[0] / "model.tflite", tmp_path / "model_int8.tflite", output="float")
    art = get_exporter("tflite", "int8").fn(req)
    rt = load(art.path)
    assert rt.card.input.dtype == "uint8" and rt.card.output.dtype == "float32"
    assert rt.card.quantization.calibration.images == 16
    assert any(layer.startswith("FULLY_CONNECTED") for layer in rt.card.quantization.float_layers)
    assert rt.raw(np.zeros((1, rt.card.input.size, rt.card.input.size, 3), np.uint8)).dtype == np.float32


def test_entropy_is_onnx_only(tiny_run: Path, exported: tuple[Path, object], tmp_path: Path) -> None:
    req = _request(tiny_run, exported[0] / "model.tflite", tmp_path / "model_int8.tflite", calib_method="entropy")
    with pytest.raises(ConfigError, match="entropy"):
        get_exporter("tflite", "int8").fn(req)
    assert not list(tmp_path.iterdir())
