"""Per-layer int8 sensitivity and the accuracy-budgeted float fallback, for ONNX and TFLite.

The model has one deliberately fragile layer: a conv whose every output channel carries a weight of 1000 on an
input channel that is always zero. Float output is unaffected, but per-channel int8 weight scales then round
every useful weight of that layer to zero. The search must keep exactly that layer in float.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_tl.card import InputSpec, ModelCard
from edge_tl.export.sensitivity import LayerInfo, budget_search, flag_layers, layer_sensitivity
from helpers.fragile import fragile_model, pixels

SPEC = InputSpec(size=32, resize=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
CARD = ModelCard(classes=("a", "b", "c", "d"), input=SPEC, backbone="fragile", weights="none")


def _calibration(px: np.ndarray):
    return lambda bs: iter([px[i:i + bs] for i in range(0, len(px), bs)])


@pytest.fixture(scope="module")
def onnx_backend(tmp_path_factory):
    import onnx

    from edge_tl.export.onnx_export import export_float_proto
    from edge_tl.export.sensitivity_onnx import OnnxQuantBackend

    path = Path(tmp_path_factory.mktemp("sens")) / "fragile.onnx"
    onnx.save(export_float_proto(fragile_model(), 32, 18), str(path))
    return OnnxQuantBackend(path, CARD, _calibration(pixels()))


@pytest.fixture(scope="module")
def tflite_backend():
    from edge_tl.export.sensitivity_tflite import TfliteQuantBackend
    from edge_tl.export.tflite_export import convert_float

    return TfliteQuantBackend(convert_float(fragile_model(), 32), CARD, _calibration(pixels()), method="absmax")


def clear_cut(backend, px: np.ndarray, margin: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """Images whose float top-2 logit margin is clear, labelled with the float prediction (accuracy 100 %)."""
    logits = backend.float_logits(px)
    top2 = np.sort(logits, axis=1)[:, -2:]
    keep = (top2[:, 1] - top2[:, 0]) > margin
    return px[keep], logits[keep].argmax(1)


def _fragile_name(backend) -> str:
    [name] = [lay.name for lay in backend.layers() if lay.label in ("c2", "Conv2d c2")]
    return name


@pytest.mark.parametrize("which", ["onnx_backend", pytest.param("tflite_backend", marks=pytest.mark.slow)])
def test_search_keeps_exactly_the_fragile_layer(which, request):
    backend = request.getfixturevalue(which)
    px, labels = clear_cut(backend, pixels())
    assert len(px) >= 32 and len(np.unique(labels)) >= 2
    report = layer_sensitivity(backend, px, labels)
    fragile = _fragile_name(backend)
    assert report.layers[0].name == fragile, "the fragile layer must rank first"
    assert report.full_int8.drop > 0.5, "plain int8 must break the budget on this model"
    result = budget_search(backend, px, labels, max_drop=0.5, ranking=report.layers)
    assert result.fits
    assert result.chosen.float_layers == (fragile,)
    assert fragile in result.reasons
    assert result.chosen.latency_ms is not None and result.chosen.size_bytes > 0


def test_budget_that_cannot_fit_reports_the_excess(onnx_backend):
    px = pixels()
    labels = onnx_backend.float_logits(px).argmax(1)
    result = budget_search(onnx_backend, px, labels, max_drop=0.5, max_float=0, timed=False)
    assert not result.fits
    assert result.excess == pytest.approx(result.chosen.drop - 0.5) and result.excess > 0
    assert result.chosen.float_layers == ()


def test_flags_known_patterns():
    layers = [LayerInfo("a", "Conv", 0, 0, 1), LayerInfo("b", "HardSwish", 1, 0, 1),
              LayerInfo("c", "Sigmoid", 2, 0, 1), LayerInfo("d", "Conv", 3, -50, 50), LayerInfo("e", "Gemm", 4, 0, 1)]
    flags = {lay.name: lay.flags for lay in flag_layers(layers)}
    assert "first layer" in flags["a"] and "last layer" in flags["e"]
    assert "hard-swish" in flags["b"] and "squeeze-excite" in flags["c"]
    assert any(f.startswith("wide range") for f in flags["d"])


def test_sensitivity_plot_leaves_matplotlib_state_alone(tmp_path):
    """The chart is drawn on a bare Figure: no backend switch, no pyplot figure left open."""
    import sys
    from types import SimpleNamespace

    import matplotlib

    from edge_tl.export.quant_report import plot_sensitivity
    from edge_tl.export.sensitivity import LayerSensitivity

    before = matplotlib.get_backend()
    had_pyplot = "matplotlib.pyplot" in sys.modules
    rows = [LayerSensitivity(f"conv{i}", "Conv", 0.1 * i, 1.0, 0.0, 1.0, ("first layer",) if i == 0 else ())
            for i in range(3)]
    report = SimpleNamespace(sensitivity=SimpleNamespace(layers=rows), backbone="tiny_cnn", format="onnx",
                             budget=SimpleNamespace(chosen=SimpleNamespace(float_layers=("conv2",))))
    png = plot_sensitivity(report, tmp_path / "s.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.get_backend() == before
    assert ("matplotlib.pyplot" in sys.modules) == had_pyplot
