"""LiteRT runtime: bad files fail with one-line ArtifactError/CardError; the card comes from inside the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_tl.export.tflite_export import embed_metadata, export_tflite, write_tflite_card
from helpers.cards import card
from helpers.tflite import needs

pytestmark = needs("ai_edge_litert", "litert_torch")

torch = pytest.importorskip("torch")

from edge_tl.card import InputSpec, ModelCard, sidecar_path  # noqa: E402
from edge_tl.errors import ArtifactError, CardError, DataError  # noqa: E402
from edge_tl.runtimes import load  # noqa: E402
from edge_tl.runtimes.litert_rt import LiteRtRuntime, read_tflite_metadata  # noqa: E402

SPEC = InputSpec(size=32, resize=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
CARD = card("pytorch", ("cat", "dog"), spec=SPEC, backbone="tiny")


def _net() -> torch.nn.Module:
    """conv, ReLU, mean pool, linear: 2 logits; the same weights at every call."""
    torch.manual_seed(0)
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 2))


@pytest.fixture(scope="module")
def float_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rt") / "model.tflite"
    return export_tflite(_net(), CARD, out).path


def test_loads_by_suffix_with_embedded_card(float_file: Path) -> None:
    rt = load(float_file, threads=1)
    assert isinstance(rt, LiteRtRuntime) and rt.card.classes == ("cat", "dog") and rt.card.format == "tflite"
    meta = read_tflite_metadata(float_file.read_bytes())
    assert meta is not None and ModelCard.loads(meta) == rt.card
    pix = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    with torch.no_grad():
        x = (torch.from_numpy(pix).float() / 255 - 0.5) / 0.25
        ref = _net()(x.permute(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(rt(pix), ref, atol=1e-5)
    np.testing.assert_allclose(rt.raw(pix), ref, atol=1e-5)


def test_truncated_file(float_file: Path, tmp_path: Path) -> None:
    data = float_file.read_bytes()
    for n in (10, len(data) // 3, len(data) - 100):
        bad = tmp_path / f"cut{n}.tflite"
        bad.write_bytes(data[:n])
        with pytest.raises(ArtifactError) as err:
            load(bad)
        assert "\n" not in str(err.value) and err.value.hint


def test_text_file_named_tflite(tmp_path: Path) -> None:
    bad = tmp_path / "model.tflite"
    bad.write_text("this is not a model\n" * 10)
    with pytest.raises(ArtifactError, match="not a TFLite model"):
        load(bad)
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    with pytest.raises(ArtifactError):
        load(empty)


def test_no_card_anywhere(float_file: Path, tmp_path: Path) -> None:
    data = embed_metadata(float_file.read_bytes(), "edge_tl.card", b"")  # empty card buffer = none
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(data)
    with pytest.raises(CardError, match="no edge-tl model card"):
        load(bare)
    CARD.with_(format="tflite", input=SPEC.__class__(**{**SPEC.__dict__, "layout": "NHWC"})).save(
        sidecar_path(bare))
    assert load(bare).card.classes == ("cat", "dog")


def test_card_size_mismatch(float_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "model.tflite"
    path.write_bytes(float_file.read_bytes())
    card = load(float_file).card
    write_tflite_card(path, card.with_(input=card.input.__class__(**{**card.input.__dict__, "size": 48,
                                                                      "resize": 48})))
    with pytest.raises(ArtifactError, match="does not match"):
        load(path)


def test_bad_pixels(float_file: Path) -> None:
    rt = load(float_file)
    with pytest.raises(ArtifactError, match="expects 32x32"):
        rt(np.zeros((1, 16, 16, 3), np.uint8))
    with pytest.raises(DataError):
        rt(np.full((1, 32, 32, 3), 2.0, np.float32))
