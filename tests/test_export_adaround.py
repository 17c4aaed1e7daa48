"""AdaRound: weights land on the quantisers' int8 grid, beat nearest rounding, are seeded, and reach the card."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edge_tl.export.adaround import AdaRoundResult, adaround
from edge_tl.export.bias_correction import fake_quant_weight


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Conv2d(16, 16, 3, padding=1, groups=4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(16, 5)).eval()


def _images(n: int, seed: int) -> torch.Tensor:
    """Smooth random images (neighbouring pixels correlated, as in photos)."""
    g = torch.Generator().manual_seed(seed)
    return nn.functional.interpolate(torch.randn(n, 3, 4, 4, generator=g), size=12, mode="bilinear")


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [m.weight.detach().clone() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@pytest.fixture(scope="module")
def rounded() -> tuple[nn.Sequential, AdaRoundResult]:
    model = _net()
    return model, adaround(model, _images(32, 1), seed=0)


def test_weights_are_on_the_int8_grid_with_the_same_scale(rounded):
    model, res = rounded
    assert res.layers == 4 and res.images == 32 and 0 < res.flipped < 0.5
    for w, w0 in zip(_weights(model), _weights(_net()), strict=True):
        assert torch.allclose(fake_quant_weight(w), w, rtol=1e-6, atol=1e-6 * float(w.abs().max()))
        assert torch.allclose(w.abs().flatten(1).amax(1), w0.abs().flatten(1).amax(1), rtol=1e-6, atol=0)
        assert not torch.equal(w, fake_quant_weight(w0))  # not plain nearest rounding
    assert all(p.grad is None for p in model.parameters())


def test_all_zero_channel_stays_zero():
    conv = nn.Conv2d(3, 4, 3)
    with torch.no_grad():
        conv.weight[1] = 0
    res = adaround(nn.Sequential(conv), _images(8, 3), iters=20, batch=4)
    assert res.layers == 1 and res.iters == 20
    assert torch.equal(conv.weight[1], torch.zeros_like(conv.weight[1]))
    assert torch.allclose(fake_quant_weight(conv.weight), conv.weight, rtol=1e-6, atol=1e-9)


def test_output_error_is_lower_than_nearest_rounding(rounded):
    model, res = rounded
    float_model, nearest = _net(), _net()
    with torch.no_grad():
        for m in nearest.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(fake_quant_weight(m.weight))
        held = _images(64, 2)  # not the calibration images
        ref = float_model(held)
        mse_nearest = float(((nearest(held) - ref) ** 2).mean())
        mse_adaround = float(((model(held) - ref) ** 2).mean())
    assert mse_adaround < 0.7 * mse_nearest, (mse_adaround, mse_nearest)
    assert res.mean_mse_after < res.mean_mse_before


def test_same_seed_same_weights_and_callback(rounded):
    model, _ = rounded
    seen: list[tuple[str, int, int]] = []
    again = _net()
    adaround(again, _images(32, 1), seed=0, callback=lambda *a: seen.append(a))
    assert all(torch.equal(a, b) for a, b in zip(_weights(model), _weights(again), strict=True))
    assert seen == [("0", 1, 4), ("2", 2, 4), ("4", 3, 4), ("8", 4, 4)]


def _calibration(batch: int) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(0)
    for _ in range(4):
        yield rng.integers(0, 256, (batch, 12, 12, 3), dtype=np.uint8)


@pytest.mark.parametrize("steps", ["adaround", "cle+adaround"])
def test_prepare_for_int8_records_adaround(steps: str):
    from edge_tl.card import InputSpec
    from edge_tl.export.int8_prep import prepare_for_int8

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2)).eval()
    spec = InputSpec(size=12, resize=12, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    prepared, record = prepare_for_int8(model, spec, _calibration, steps, bias_images=16)
    assert prepared is not model and record["steps"] == steps and record["bn_folded"]
    ar = record["adaround"]
    assert ar["layers"] == 3 and ar["images"] == 16 and ar["iters"] > 0 and ar["mean_mse_before"] > 0
    assert ("cle" in record) == steps.startswith("cle")
    for w in _weights(prepared):
        assert torch.allclose(fake_quant_weight(w), w, rtol=1e-6, atol=1e-6 * float(w.abs().max()))


def test_prepared_sources_prepare_each_weight_grid_once(tmp_path: Path):
    """ONNX's 7-bit weights get weights rounded on [-64, 64], TFLite's on [-127, 127]; formats sharing a grid
    share one preparation, and each card records its own grid."""
    from edge_tl.card import InputSpec
    from edge_tl.export.bias_correction import WEIGHT_QMAX
    from edge_tl.export.int8_prep import FULL_GRID, PreparedSources
    from edge_tl.records import QuantRecipe

    assert FULL_GRID == WEIGHT_QMAX

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2)).eval()
    spec = InputSpec(size=12, resize=12, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    exported: dict[str, nn.Module] = {}

    def export_float(fmt: str, m: nn.Module, folder: Path) -> Path:
        exported[fmt] = m
        return folder / "model"

    said: list[str] = []
    src = PreparedSources(model, spec, "tiny_cnn", _calibration, "adaround", export_float, said.append,
                          weight_qmax={"onnx": 64})
    src.float_path("onnx"), src.float_path("tflite"), src.float_path("onnx")
    src.close()
    assert [m for m in said if m.startswith("preparing")] == [
        "preparing weights for int8 (adaround, weights on [-64, 64] for onnx)", "preparing weights for int8 (adaround)"]
    assert any(m.startswith("AdaRound layer 3/3") for m in said)
    for fmt, qmax in (("onnx", 64), ("tflite", 127)):
        for w in _weights(exported[fmt])[:-1]:  # the rounded layers
            assert torch.allclose(fake_quant_weight(w, qmax), w, rtol=1e-6, atol=1e-6 * float(w.abs().max()))
        prep = src.stamp(QuantRecipe(mode="int8", recipe="r"), fmt).prep
        assert prep.steps == prep.choice == "adaround" and prep.details["weight_qmax"] == qmax
    assert not torch.allclose(fake_quant_weight(_weights(exported["onnx"])[0]), _weights(exported["onnx"])[0])


@pytest.mark.slow  # an ONNX export and its int8 build: ~15 s on the shared machine
def test_cli_export_onnx_int8_with_adaround(tiny_run: Path, tmp_path: Path, capsys):
    pytest.importorskip("onnxruntime")
    from edge_tl.card import ModelCard, sidecar_path
    from helpers.cli import cli

    out = tmp_path / "ex"
    res = cli(["export", "--model", str(tiny_run), "--out", str(out), "--format", "onnx", "--quantize", "int8",
               "--calib-size", "8", "--min-agreement", "50", "--max-drop", "100", "--int8-prep", "adaround",
               "--no-verify"], capsys)
    assert res.code == 0, res.err
    prep = ModelCard.load(sidecar_path(out / "model_int8.onnx")).quantization.prep
    assert prep.choice == "adaround" and prep.steps == "adaround" and prep.details["adaround"]["layers"] > 0


@pytest.mark.parametrize(("stride", "padding", "dilation", "groups"), [(2, 1, 1, 4), (1, 2, 2, 2), (3, (1, 2), 1, 1)])
def test_window_conv_equals_the_crop_of_the_full_conv(stride: int, padding, dilation: int, groups: int):
    from edge_tl.export.adaround import _pad, _window_conv

    torch.manual_seed(0)
    conv = nn.Conv2d(8, 8, (3, 5), stride=stride, padding=padding, dilation=dilation, groups=groups).eval()
    x = torch.randn(5, 8, 61, 53)
    with torch.no_grad():
        full = conv(x)
        x_pad, w, idx = _pad(conv, x), conv.weight * 0.9, torch.tensor([3, 0, 4])
        full_w = conv._conv_forward(x, w, conv.bias)
        for oy, ox, ch, cw in [(0, 0, 7, 7), (full.shape[-2] - 6, full.shape[-1] - 5, 6, 5), (3, 2, 4, 9)]:
            win = _window_conv(conv, x_pad, conv.weight, oy, ox, ch, cw)
            assert win.shape == (5, 8, ch, cw)
            assert torch.allclose(win, full[..., oy:oy + ch, ox:ox + cw], atol=1e-5)
            sub = _window_conv(conv, x_pad, w, oy, ox, ch, cw, idx)
            assert torch.allclose(sub, full_w[idx][..., oy:oy + ch, ox:ox + cw], atol=1e-5)


def test_large_conv_outputs_are_trained_on_windows_and_beat_nearest():
    from edge_tl.export.adaround import CROP

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, padding_mode="reflect"))
    x = nn.functional.interpolate(torch.randn(8, 3, 8, 8, generator=torch.Generator().manual_seed(4)), size=CROP + 8)
    res = adaround(model.eval(), x, iters=60, batch=4, images=6)
    assert res.layers == 2 and res.images == 6 and res.mean_mse_after < res.mean_mse_before
    for w in _weights(model):
        assert torch.allclose(fake_quant_weight(w), w, rtol=1e-6, atol=1e-6 * float(w.abs().max()))
