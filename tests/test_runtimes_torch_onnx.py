"""PyTorch and ONNX Runtime runtimes: same pixels in, same logits out; bad artefacts fail in one line."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest

from edge_tl.card import ModelCard
from edge_tl.errors import ArtifactError, CardError, DataError
from edge_tl.export.onnx_export import write_onnx_card
from edge_tl.runtimes import SaturationWarning, load
from helpers import cards
from helpers.export_fixtures import heldout_pixels
from helpers.models import export_onnx, sample_run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_run(tmp_path_factory.mktemp("rt"))


@pytest.fixture(scope="module")
def onnx_path(run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rt_exported")
    export_onnx(run, ["none"], out, verify=False)
    return out / "model.onnx"


def test_torch_and_onnx_agree_on_uint8_and_float_pixels(run: Path, onnx_path: Path):
    pixels, _ = heldout_pixels(run)
    pt, ox = load(run, threads=1), load(onnx_path, threads=1)
    assert pt.name == "pytorch" and ox.name == "onnxruntime" and ox.threads == 1
    ref = pt(pixels)
    assert ref.dtype == np.float32 and ref.shape == (len(pixels), pt.card.num_classes)
    np.testing.assert_allclose(ox(pixels), ref, atol=1e-4)
    np.testing.assert_allclose(ox(pixels.astype(np.float32) / 255.0), ref, atol=1e-4)
    np.testing.assert_allclose(ox.predict_proba(pixels).sum(axis=1), 1.0, atol=1e-5)
    assert ox.raw(pixels).dtype == np.float32  # float model: raw == logits
    assert ox(pixels[0]).shape == (1, pt.card.num_classes)  # one HWC image is a batch of one
    assert ox.card.classes == pt.card.classes and ox.card.format == "onnx"
    for rt in (pt, ox):  # the engine alone on the runtime's own input tensor computes the same logits
        assert rt.layout == "NCHW"
        np.testing.assert_array_equal(rt.run_tensor(rt.input_tensor(pixels)), rt(pixels))


def test_batching_is_invisible(run: Path, onnx_path: Path):
    pixels, _ = heldout_pixels(run)
    big = np.concatenate([pixels] * (70 // len(pixels) + 1))[:70]  # more than one internal batch of 64
    ox = load(onnx_path, threads=1)
    np.testing.assert_allclose(ox(big)[: len(pixels)], ox(pixels), atol=1e-5)


def test_onnx_bytes_run_as_the_file_does(run: Path, onnx_path: Path):
    """from_bytes (the export search's candidates): the file's logits from its bytes; a card that does not match
    the model, or bytes that are no model, are refused in one line."""
    from edge_tl.runtimes.onnx_rt import OnnxRuntime

    pixels, _ = heldout_pixels(run)
    ox = load(onnx_path, threads=1)
    mem = OnnxRuntime.from_bytes(onnx_path.read_bytes(), ox.card, threads=1)
    assert mem.name == "onnxruntime" and str(mem.path) == "<memory>"
    np.testing.assert_array_equal(mem(pixels), ox(pixels))
    with pytest.raises(ArtifactError, match="logits"):
        OnnxRuntime.from_bytes(onnx_path.read_bytes(), ox.card.with_(classes=(*ox.card.classes, "x")))
    with pytest.raises(ArtifactError, match="not a valid ONNX model"):
        OnnxRuntime.from_bytes(b"not a model", ox.card)


def test_wrong_image_size_is_artifact_error(onnx_path: Path):
    ox = load(onnx_path, threads=1)
    with pytest.raises(ArtifactError, match="expects 32x32"):
        ox(np.zeros((2, 64, 64, 3), np.uint8))
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        ox(np.full((1, 32, 32, 3), 255.0, np.float32))


def test_card_falls_back_to_sidecar_then_fails(onnx_path: Path, tmp_path: Path):
    proto = onnx.load(str(onnx_path))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    with pytest.raises(CardError, match="carries no edge-tl model card"):
        load(bare)
    shutil.copy(onnx_path.with_name("model.onnx.card.json"), tmp_path / "bare.onnx.card.json")
    assert load(bare).card.classes  # the sidecar beside the file is enough


def test_saturated_card_warns_on_load(onnx_path: Path, tmp_path: Path):
    p = tmp_path / "sat.onnx"
    shutil.copy(onnx_path, p)
    card = ModelCard.load(onnx_path.with_name("model.onnx.card.json"))
    write_onnx_card(p, card.with_(parity=cards.parity(saturated=0.4)))
    assert json.loads(p.with_name("sat.onnx.card.json").read_text())["parity"]["saturated"] == 0.4
    with pytest.warns(SaturationWarning, match="40.0 %"):
        load(p)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load(onnx_path)  # a clean card loads silently
