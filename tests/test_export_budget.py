"""End to end: `edge-tl export --quantize int8 --max-drop X` keeps exactly the fragile layer in float."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_tl.export.api import export
from edge_tl.export.registry import ExportOptions
from edge_tl.runtimes import load
from helpers.export_fixtures import build_run
from helpers.fragile import make_fragile


@pytest.fixture(scope="module")
def fragile_run(tmp_path_factory, sample_dir) -> Path:
    return build_run(tmp_path_factory.mktemp("fragile") / "run", sample_dir, tweak=make_fragile, steps=80)


def _opts(**kw) -> ExportOptions:
    return ExportOptions(calib_size=60, min_agreement=0.8, max_ece_delta=100.0, **kw)


@pytest.mark.parametrize("fmt", ["onnx", pytest.param("tflite", marks=pytest.mark.slow)])
def test_fallback_keeps_the_fragile_layer_float(fragile_run, tmp_path, fmt):
    result = export(fragile_run, [fmt], ["int8"], tmp_path / "out", _opts(max_drop=0.5, verify=False))
    [art] = [a for a in result.artifacts if a.quantize == "int8"]
    budget = art.card.quantization.budget
    assert budget.drop_before > 0.5, "plain int8 must break the budget on this model"
    assert budget.fits and budget.drop <= 0.5
    assert len(budget.fallback_layers) == 1
    [layer] = budget.fallback_layers
    assert layer in budget.reasons
    assert layer in art.card.quantization.float_layers
    # the file on disk is the fallback model and carries the same card
    rt = load(art.path)
    assert rt.card.quantization.budget.fallback_layers == (layer,)
    if fmt == "tflite":  # the fallback file keeps the shipped layout: uint8 pixels in, as MediaPipe requires
        import numpy as np

        assert rt.interpreter.get_input_details()[0]["dtype"] == np.uint8
        assert art.card.input.dtype == "uint8"
    else:  # the layer kept in float is stage1's conv
        import onnx

        [node] = [n for n in onnx.load(str(art.path)).graph.node if n.name == layer]
        assert node.op_type == "Conv" and any("stage1" in i for i in node.input)


def test_no_fallback_leaves_the_drop(fragile_run, tmp_path):
    result = export(fragile_run, ["onnx"], ["int8"], tmp_path / "out",
                    _opts(max_drop=0.5, verify=False, fallback=False))
    [art] = [a for a in result.artifacts if a.quantize == "int8"]
    assert art.card.quantization is not None and art.card.quantization.budget is None


def test_budget_cannot_fit_says_by_how_much(fragile_run, tmp_path, monkeypatch):
    from edge_tl.export import budget as budget_mod
    from edge_tl.export import sensitivity

    real = sensitivity.budget_search
    monkeypatch.setattr(budget_mod, "budget_search", lambda *a, **k: real(*a, **{**k, "max_float": 0}))
    result = export(fragile_run, ["onnx"], ["int8"], tmp_path / "out", _opts(max_drop=0.5, verify=False))
    [art] = [a for a in result.artifacts if a.quantize == "int8"]
    budget = art.card.quantization.budget
    assert not budget.fits and budget.drop > 0.5
    assert any("NOT met" in n and "over by" in n for n in art.notes)
