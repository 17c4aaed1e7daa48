"""ONNX export matrix: tiny backbones x {none, fp16, dynamic, int8} -> load -> predict -> parity.

Plus a model with a wide-range output whose fully-quantised int8 logits saturate (the gate catches it)
while the default recipe (logits layer in float) has none.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edge_tl.card import CARD_KEY, ModelCard
from edge_tl.data.manifest import manifest_for_card
from edge_tl.errors import ExportError, ParityError
from edge_tl.export.calibration import calibration_files
from edge_tl.records import Calibration
from edge_tl.runtimes import SaturationWarning, load
from helpers.export_fixtures import build_run, heldout_pixels
from helpers.models import export_onnx

MODES = ("none", "fp16", "dynamic", "int8")
NAMES = {"none": "model.onnx", "fp16": "model_fp16.onnx", "dynamic": "model_dynamic.onnx", "int8": "model_int8.onnx"}


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edge_tl.data.sample import generate_sample

    return generate_sample(tmp_path_factory.mktemp("exp") / "sample", per_class=10, size=48)


@pytest.fixture(scope="module", params=["tiny_cnn", "tiny_mobilenet"])
def exported(request: pytest.FixtureRequest, sample: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp(request.param)
    run = build_run(root / "run", sample, backbone=request.param)
    # 18 held-out images of a barely trained tiny model: one int8 top-1 flip is 5.6 %, so the 98 % default is
    # loosened here (float variants still need 100 %); the real-architecture test below keeps the defaults.
    result = export_onnx(run, MODES, root / "exported", calib_size=20, min_agreement=0.8)
    return run, result


def test_writes_every_variant_and_all_pass(exported):
    _, result = exported
    assert [a.path.name for a in result.artifacts] == [NAMES[m] for m in MODES]
    assert result.passed and len(result.parity) == 4
    files = sorted(p.name for p in result.out_dir.iterdir())
    assert not any(f.endswith(".data") or f.startswith(".") for f in files)  # self-contained, no temp left
    sizes = {a.quantize: a.size_mb for a in result.artifacts}
    assert sizes["int8"] < sizes["none"] and sizes["fp16"] < sizes["none"]


@pytest.mark.parametrize("mode", MODES)
def test_variant_roundtrip(exported, mode: str):
    run, result = exported
    path = result.out_dir / NAMES[mode]
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version >= 17
    inside = ModelCard.loads(next(p.value for p in proto.metadata_props if p.key == CARD_KEY))
    beside = ModelCard.load(path.with_name(path.name + ".card.json"))
    assert inside == beside and inside.format == "onnx" and inside.parity.passed
    assert inside.source_sha256 and inside.run_dir == str(run.resolve())
    assert ("none" if inside.quantization is None else inside.quantization.mode) == mode
    rt = load(path, threads=1)  # needs nothing but the file
    pixels, _ = heldout_pixels(run)
    ref = load(run, threads=1)(pixels)
    for batch in (pixels[:1], pixels[:3], pixels):  # dynamic batch axis
        assert rt(batch).shape == (len(batch), len(inside.classes))
    out = rt(pixels)
    np.testing.assert_array_equal(rt.run_tensor(rt.input_tensor(pixels)), out)  # the engine alone: the same
    tol = {"none": 1e-4, "fp16": 5e-2}.get(mode)
    if tol is not None:
        np.testing.assert_allclose(out, ref, atol=tol)
    assert (out.argmax(1) == ref.argmax(1)).mean() >= (1.0 if mode in ("none", "fp16") else 0.8)
    if mode == "int8":
        q = inside.quantization
        assert q.calibration == Calibration(images=20, method="minmax", split="train")
        assert q.output == "float" and q.float_layers
        assert rt.output_quant is None  # logits stay float: cannot saturate


def test_int8_graph_is_qdq_with_uint8_activations(exported):
    _, result = exported
    proto = onnx.load(str(result.out_dir / "model_int8.onnx"))
    ops = [n.op_type for n in proto.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    zps = [inits[n.input[2]] for n in proto.graph.node if n.op_type == "QuantizeLinear" and n.input[2] in inits]
    assert zps and all(z.dtype == np.uint8 for z in zps)  # activations are uint8
    weight_dq = [inits[n.input[0]] for n in proto.graph.node
                 if n.op_type == "DequantizeLinear" and n.input[0] in inits and inits[n.input[0]].ndim == 4]
    assert weight_dq and all(w.dtype == np.int8 for w in weight_dq)  # conv weights int8


def test_calibration_uses_train_split_only(exported):
    run, _ = exported
    m = manifest_for_card(ModelCard.load(run / "card.json"))
    chosen = calibration_files(m, 20, "train", seed=0)
    assert set(chosen) <= set(m.files("train")) and not set(chosen) & set(m.files("test"))
    assert chosen == calibration_files(m, 20, "train", seed=0)  # reproducible


@pytest.fixture(scope="module")
def wide_run(sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny_cnn with its head scaled x8: logits span a wide range, test images exceed the calibration extremes."""
    import torch

    def widen(model: torch.nn.Module) -> None:
        head = model.head[-1] if isinstance(model.head, torch.nn.Sequential) else model.head
        with torch.no_grad():
            head.weight.mul_(8)
            head.bias.mul_(8)

    return build_run(tmp_path_factory.mktemp("wide") / "run", sample, tweak=widen)


def test_naive_int8_output_saturates_and_gate_catches_it(wide_run: Path, tmp_path: Path):
    with pytest.raises(ParityError) as err:
        export_onnx(wide_run, ["int8"], tmp_path / "naive", calib_size=6, output="quantized", min_agreement=0.8)
    row = next(r for r in err.value.rows if r["variant"] == "model_int8.onnx")
    assert row["saturated"] > 0.001 and any("saturated outputs" in f for f in row["failures"])
    assert "saturated outputs" in str(err.value)
    path = tmp_path / "naive" / "model_int8.onnx"
    with pytest.warns(SaturationWarning):
        rt = load(path)  # the artefact is kept, its card records the failure and warns on load
    assert rt.output_quant is not None and rt.raw(heldout_pixels(wide_run)[0]).dtype == np.uint8
    assert ModelCard.load(path.with_name("model_int8.onnx.card.json")).parity.saturated == row["saturated"]

    try:
        rows = export_onnx(wide_run, ["int8"], tmp_path / "fixed", calib_size=6, min_agreement=0.8).parity
    except ParityError as exc:  # on a tiny test split one top-1 flip may fail agreement; not the point here
        rows = exc.result.parity
    r = next(p for p in rows if p.variant == "model_int8.onnx")
    assert r.saturated == 0.0 and not any("saturated" in f for f in r.failures)
    assert r.kl <= row["kl"] * 1.5 + 1e-6
    summary = {"naive": {k: row[k] for k in ("saturated", "kl", "max_dprob")},
               "fixed": {"saturated": r.saturated, "kl": r.kl, "max_dprob": r.max_dprob}}
    print(json.dumps(summary))  # before/after numbers, visible with -s


def test_converter_failure_names_model_and_keeps_float(wide_run: Path, tmp_path: Path, monkeypatch):
    import onnxruntime.quantization as q

    def broken(*args, **kwargs):
        raise RuntimeError("Unsupported op FancyConv\nmore detail")

    monkeypatch.setattr(q, "quantize_static", broken)
    with pytest.raises(ExportError, match=r"model.onnx \(tiny_cnn\) failed: Unsupported op FancyConv") as err:
        export_onnx(wide_run, ["int8"], tmp_path, calib_size=4, verify=False)
    assert "\n" not in str(err.value) and "kept" in str(err.value)
    assert (tmp_path / "model.onnx").is_file() and not (tmp_path / "model_int8.onnx").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


@pytest.mark.slow
def test_mobilenet_v2_real_architecture(sample: Path, tmp_path: Path):
    """The real MobileNetV2 graph (inverted residuals, ReLU6, residual Adds) at 64 px: fp32 exact, int8 close."""
    run = build_run(tmp_path / "run", sample, backbone="mobilenet_v2", size=64, steps=8)
    result = export_onnx(run, ["none", "int8"], tmp_path / "exported", calib_size=30, max_drop=100.0)
    rows = {r.variant: r for r in result.parity}
    assert rows["model.onnx"].max_dlogit < 1e-3 and rows["model.onnx"].agreement == 1.0
    assert rows["model_int8.onnx"].saturated == 0.0
    sizes = {a.quantize: a.size_mb for a in result.artifacts}
    assert sizes["int8"] < 0.4 * sizes["none"]  # int8 weights: about a quarter of fp32


@pytest.mark.parametrize(("choice", "risk", "bits", "wtype"), [
    ("auto", True, 7, "int8"), ("auto", False, 8, "int8"), ("full", True, 8, "int8"), ("reduced", False, 7, "int8"),
    ("u8", True, 8, "uint8")])
def test_int8_weight_range_follows_the_cpu_or_the_flag(tiny_run: Path, tmp_path: Path, monkeypatch, choice: str,
                                                      risk: bool, bits: int, wtype: str):
    """7-bit weights (ORT's reduce_range) where full-range u8 x s8 products saturate (no VNNI), or when asked;
    uint8 weights (u8 x u8 kernels: no saturation, all 8 bits) with ``u8``."""
    from edge_tl import _cpu
    from edge_tl.export.onnx_quant import WEIGHT_SCHEMES, scheme_of
    from edge_tl.export.registry import ONNX_WEIGHT_RANGES

    assert ["auto", *WEIGHT_SCHEMES.names()] == list(ONNX_WEIGHT_RANGES)

    monkeypatch.setattr(_cpu, "int8_overflow_risk", lambda cpuinfo=None: risk)
    result = export_onnx(tiny_run, ["int8"], tmp_path, calib_size=6, verify=False, fallback=False,
                         onnx_weights=choice)
    quant = next(a.card for a in result.artifacts if a.quantize == "int8").quantization
    assert (quant.weight_bits, quant.weight_type) == (bits, wtype) and ("7-bit" in quant.recipe) == (bits == 7)
    assert quant.full_range_int8_weights == (bits == 8 and wtype == "int8")
    assert scheme_of(quant) == (choice if choice != "auto" else "reduced" if risk else "full")
    proto = onnx.load(str(tmp_path / "model_int8.onnx"))
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    deq = [n for n in proto.graph.node if n.op_type == "DequantizeLinear" and inits.get(n.input[0]) is not None
           and inits[n.input[0]].dtype == np.dtype(wtype)]
    weights = [inits[n.input[0]] for n in deq]
    zero = 128 if wtype == "uint8" else 0  # symmetric per channel: one zero point, as QLinearConv needs
    assert all(np.all(inits[n.input[2]] == zero) for n in deq)
    span = max(int(np.abs(w.astype(np.int32) - zero).max()) for w in weights) if weights else 0
    assert span == (64 if bits == 7 else 127 if wtype == "int8" else 128)
