"""OpenVINO: the runtime (IR, ONNX and TFLite files), the IR export (f32, fp16, NNCF int8), the card in rt_info,
explicit inference precision, parity, bench rows, and the bad inputs (no OpenVINO, unreadable files, NNCF failure)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_tl.card import ModelCard, sidecar_path
from edge_tl.errors import ArtifactError, BackendMissingError, ConfigError, ExportError, UnknownNameError
from edge_tl.export.api import export
from edge_tl.export.registry import ExportOptions
from edge_tl.parity import check_parity, limits_for
from edge_tl.runtimes import load
from edge_tl.runtimes.base import runtime_names, runtimes_for
from edge_tl.runtimes.timing import timed_call
from helpers.cli import cli
from helpers.export_fixtures import build_run, has_bf16, heldout_pixels

pytest.importorskip("openvino")

FAST = ["--min-time", "0.05", "--warmup", "2"]
LOOSE_INT8 = {"min_agreement": 0.5, "max_drop": 100.0}  # a 32 px toy model: int8 fidelity is not the point here


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> Path:
    """runs/tiny and exported/ with model.{onnx,tflite} and model{,_fp16,_int8}.xml, all verified."""
    root = tmp_path_factory.mktemp("openvino")
    run = build_run(root / "runs" / "tiny", sample_dir, steps=30)
    export(run, formats=("onnx", "tflite", "openvino"), quantize=("none",), out_dir=root / "exported")
    export(run, formats=("openvino",), quantize=("fp16", "int8"), out_dir=root / "exported",
           options=ExportOptions(**LOOSE_INT8))
    return root


def _ref(project: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pixels, labels = heldout_pixels(project / "runs" / "tiny")
    return pixels, labels, load(project / "runs" / "tiny", threads=1)(pixels)


@pytest.mark.parametrize(("name", "atol", "precision"), [("model.xml", 1e-3, "f32"), ("model_fp16.xml", 5e-2, "f32")])
def test_float_ir_matches_pytorch(project: Path, name: str, atol: float, precision: str) -> None:
    pixels, _, ref = _ref(project)
    rt = load(project / "exported" / name, threads=1)
    assert rt.name == "openvino" and rt.precision == precision and rt.card.format == "openvino"
    assert rt.card.precision == precision
    np.testing.assert_allclose(rt(pixels), ref, atol=atol)
    np.testing.assert_allclose(rt(pixels[:1]), ref[:1], atol=atol)  # batch 1 and batch N compile separately
    np.testing.assert_allclose(rt(pixels.astype(np.float32) / 255.0), ref, atol=atol)
    assert rt.compiled(1).get_property("INFERENCE_PRECISION_HINT").to_string() == "f32"
    assert rt.card.parity is not None and rt.card.parity.passed


def test_int8_ir_is_quantised_and_verified(project: Path) -> None:
    from edge_tl.runtimes.openvino_rt import is_quantized

    pixels, _, ref = _ref(project)
    rt = load(project / "exported" / "model_int8.xml", threads=1)
    assert rt.precision == "int8" and is_quantized(rt.model)
    q = rt.card.quantization
    assert q.mode == "int8" and "NNCF" in q.recipe and q.calibration.images > 0
    assert q.float_layers  # the logits layer stays in float (--int8-output float)
    assert q.budget.method == "nncf" and q.budget.images > 0
    out = rt(pixels)
    assert out.shape == ref.shape and (out.argmax(1) == ref.argmax(1)).mean() >= 0.5
    assert rt.card.parity.n >= len(pixels) and rt.card.parity.quantize == "int8"
    assert (project / "exported" / "model_int8.bin").stat().st_size < (project / "exported" / "model.bin").stat().st_size


def test_card_round_trip_in_rt_info(project: Path, tmp_path: Path) -> None:
    from edge_tl.export.openvino_export import read_ir, write_ir_card
    from edge_tl.runtimes.openvino_rt import ir_card_text, read_ir_card

    src = project / "exported" / "model.xml"
    for f in (src, src.with_suffix(".bin")):
        shutil.copy(f, tmp_path / f.name)
    xml = tmp_path / "model.xml"
    inside = read_ir_card(read_ir(xml), xml)
    assert inside == ModelCard.load(sidecar_path(src)) == ModelCard.loads(ir_card_text(xml))
    new = inside.with_(metrics={"note": "rewritten"})
    write_ir_card(xml, new)
    assert load(xml, threads=1).card == new == ModelCard.load(sidecar_path(xml))
    sidecar_path(xml).unlink()  # the card inside the IR is enough
    assert load(xml, threads=1).card == new


def test_openvino_runs_onnx_and_tflite_files(project: Path) -> None:
    assert runtime_names()[".onnx"] == "onnxruntime" and runtime_names()[".tflite"] == "litert"
    assert runtime_names()[".xml"] == "openvino"
    assert runtimes_for(".onnx") == ["onnxruntime", "openvino"] and runtimes_for(".tflite") == ["litert", "openvino"]
    pixels, _, ref = _ref(project)
    for name, default in (("model.onnx", "onnxruntime"), ("model.tflite", "litert")):
        assert load(project / "exported" / name, threads=1).name == default
        rt = load(project / "exported" / name, threads=1, runtime="openvino")
        assert rt.name == "openvino" and rt.precision == "f32" and rt.layout == rt.card.input.layout
        np.testing.assert_allclose(rt(pixels), ref, atol=1e-3)
        np.testing.assert_array_equal(rt.run_tensor(rt.input_tensor(pixels)), rt(pixels))


def test_precision_is_explicit(project: Path) -> None:
    xml = project / "exported" / "model.xml"
    with pytest.raises(ConfigError, match="not quantised"):
        load(xml, threads=1, precision="int8")
    with pytest.raises(UnknownNameError, match=r"runtime for \.xml files"):
        load(xml, runtime="litert")
    if not has_bf16():
        pytest.skip("this CPU has no bf16")
    pixels, _, ref = _ref(project)
    rt = load(xml, threads=1, precision="bf16")
    assert rt.precision == "bf16" and rt.compiled(1).get_property("INFERENCE_PRECISION_HINT").to_string() == "bf16"
    diff = np.abs(rt(pixels) - ref).max()
    assert 1e-3 < diff < 0.5  # really computed in bf16: not the f32 result, but close to it


def test_in_memory_model_runs_as_the_file_does(project: Path) -> None:
    """from_model (the export search's variants): the same logits as the loaded file; with dynamic_batch one
    compilation serves every batch size; a card that does not match the model is refused."""
    import dataclasses

    from edge_tl.runtimes.openvino_rt import OpenVinoRuntime

    pixels, _, _ = _ref(project)
    xml = project / "exported" / "model_int8.xml"
    rt = load(xml, threads=1)
    model = rt.core.read_model(str(xml))
    dyn = OpenVinoRuntime.from_model(model, rt.card, threads=1, dynamic_batch=True)
    assert dyn.precision == "int8" and not model.inputs[0].get_partial_shape()[0].is_static
    np.testing.assert_allclose(dyn(pixels), rt(pixels), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dyn(pixels[:3]), rt(pixels[:3]), rtol=1e-5, atol=1e-5)
    assert len(dyn._compiled) == 1 and len(rt._compiled) == 3  # batch 1 at load, then N and 3
    static = OpenVinoRuntime.from_model(model, rt.card, threads=1)
    assert timed_call(static, pixels[:1]).loop == "engine" and list(static._compiled) == [1]
    other = rt.card.with_(classes=(*rt.card.classes, "extra"))
    with pytest.raises(ArtifactError, match="logits"):
        OpenVinoRuntime.from_model(model, other)
    with pytest.raises(ConfigError, match="not quantised"):
        OpenVinoRuntime.from_model(load(project / "exported" / "model.xml").model, rt.card, precision="int8")
    small = rt.card.with_(input=dataclasses.replace(rt.card.input, size=rt.card.input.size * 2))
    with pytest.raises(ArtifactError, match="input shape"):
        OpenVinoRuntime.from_model(model, small)


def test_engine_call_computes_what_the_runtime_computes(project: Path) -> None:
    pixels, _, _ = _ref(project)
    rt = load(project / "exported" / "model_int8.xml", threads=1)
    call = timed_call(rt, pixels[:1])
    assert call.loop == "engine"
    call.fn()
    out = np.asarray(rt.request(1).get_output_tensor(0).data)
    np.testing.assert_allclose(out, rt(pixels[:1]), rtol=1e-5, atol=1e-5)


def test_bench_rows_for_openvino(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exp = project / "exported"
    args = ["bench", str(exp / "model.onnx"), str(exp / "model.xml"), str(exp / "model_int8.xml"),
            "--runtimes", "ort,openvino", "--threads", "1", *FAST, "--json", str(tmp_path / "b.json")]
    code, out, err = cli(args, capsys)
    assert code == 0, err
    rows = {(r["name"], r["runtime"]): r for r in json.loads((tmp_path / "b.json").read_text())["rows"]}
    assert set(rows) == {("model.onnx", "onnxruntime"), ("model.onnx", "openvino"), ("model.xml", "openvino"),
                         ("model_int8.xml", "openvino")}
    assert all(r["status"] == "ok" and r["loop"] == "engine" for r in rows.values())
    assert rows["model.xml", "openvino"]["precision"] == "f32"
    assert rows["model_int8.xml", "openvino"]["precision"] == "int8"
    assert rows["model.xml", "openvino"]["size_mb"] > (exp / "model.xml").stat().st_size / 1e6  # .bin counted
    assert rows["model.xml", "openvino"]["macs"] == rows["model.onnx", "onnxruntime"]["macs"] > 0
    assert "openvino" in out and "int8" in out


def test_openvino_missing(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    with pytest.raises(BackendMissingError) as exc:
        load(project / "exported" / "model.xml")
    assert exc.value.hint == "pip install openvino"
    assert load(project / "exported" / "model.onnx", threads=1).name == "onnxruntime"  # the others carry on


def test_unreadable_files(project: Path, tmp_path: Path) -> None:
    xml = tmp_path / "model.xml"
    xml.write_text("<net><layers><layer type='NoSuchOp'/></layers></net>")
    with pytest.raises(ArtifactError, match="no weights file"):
        load(xml)
    xml.with_suffix(".bin").write_bytes(b"")
    with pytest.raises(ArtifactError, match=r"OpenVINO cannot read model\.xml"):
        load(xml)


def test_nncf_failure_keeps_the_float_ir(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nncf

    def broken(*_a: object, **_k: object) -> None:
        raise RuntimeError("statistics collection failed")

    monkeypatch.setattr(nncf, "quantize", broken)
    with pytest.raises(ExportError, match=r"NNCF quantisation of model\.xml") as exc:
        export(project / "runs" / "tiny", ["openvino"], ["int8"], tmp_path)
    assert "float model.xml was kept" in exc.value.hint
    assert (tmp_path / "model.xml").is_file() and (tmp_path / "model.bin").is_file()
    assert not (tmp_path / "model_int8.xml").exists()


def test_budget_runs_both_repairs_and_keeps_the_better(tmp_path_factory: pytest.TempPathFactory,
                                                       sample_dir: Path) -> None:
    """Plain NNCF int8 ruins a layer with one huge weight per output channel; NNCF accuracy control and edge-tl's
    own search on the IR both repair it, both outcomes are recorded, and the file on disk is the one kept."""
    from helpers.fragile import make_fragile

    root = tmp_path_factory.mktemp("ov_fragile")
    run = build_run(root / "run", sample_dir, tweak=make_fragile, steps=80)
    opts = ExportOptions(calib_size=60, min_agreement=0.8, max_ece_delta=100.0, max_drop=0.5, verify=False)
    result = export(run, ["openvino"], ["int8"], root / "out", opts)
    [art] = [a for a in result.artifacts if a.quantize == "int8"]
    budget = art.card.quantization.budget
    assert budget.drop_before > 0.5, "plain int8 must break the budget on this model"
    cands = budget.candidates
    assert set(cands) == {"nncf_accuracy_control", "edge_tl_fallback"}
    for c in cands.values():
        assert c.latency_ms is not None and c.latency_ms > 0
    fitting = [k for k, c in cands.items() if c.fits]
    assert fitting, cands
    best = min(fitting, key=lambda k: cands[k].latency_ms)
    assert budget.method == best and budget.fits and budget.drop <= 0.5 and budget.fallback_layers
    assert budget.drop == cands[best].drop
    assert cands["edge_tl_fallback"].fallback_layers  # edge-tl's search kept the fragile layer float
    assert any("nncf_accuracy_control" in n and "edge_tl_fallback" in n for n in art.notes)
    assert load(art.path).card.quantization.budget == budget  # the file on disk is the repaired model
    pixels, _ = heldout_pixels(run)
    out = load(art.path, threads=1)(pixels)
    assert out.shape[0] == len(pixels) and np.isfinite(out).all()


def _hide_openvino(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "openvino" or m.startswith("openvino.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError


def test_format_all_skips_openvino_when_it_is_missing(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    _hide_openvino(monkeypatch)
    out = tmp_path / "ex"
    code, _, err = cli(["export", "--model", str(project / "runs" / "tiny"), "--format", "all", "--out", str(out),
                        "--json", str(tmp_path / "r.json")], capsys)
    assert code == 0, err
    assert (out / "model.onnx").is_file() and (out / "model.tflite").is_file()
    assert not list(out.glob("*.xml"))
    warnings = [ln for ln in err.splitlines() if "skipping" in ln or "not installed" in ln]
    assert len(warnings) == 1 and "openvino" in warnings[0] and "pip install 'edge-tl[openvino]'" in warnings[0], err
    data = json.loads((tmp_path / "r.json").read_text())
    assert len(data["skipped"]) == 1 and data["skipped"][0].startswith("openvino")
    assert {Path(a["path"]).name for a in data["artifacts"]} == {"model.onnx", "model.tflite"}


def test_format_openvino_without_openvino_is_one_line_error(project: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    _hide_openvino(monkeypatch)
    code, _, err = cli(["export", "--model", str(project / "runs" / "tiny"), "--format", "openvino",
                        "--out", str(tmp_path / "ex")], capsys)
    assert code == 2 and err.strip().count("\n") == 0, err
    assert "openvino" in err and "pip install 'edge-tl[openvino]'" in err
    assert not (tmp_path / "ex").exists() or not list((tmp_path / "ex").iterdir())


def test_parity_checks_the_precision_it_runs_at(project: Path) -> None:
    pixels, labels, ref = _ref(project)
    card = load(project / "exported" / "model.xml", threads=1).card
    assert card.parity.precision == "f32" == card.precision  # the gate judged what the card states
    assert load(project / "exported" / "model_int8.xml", threads=1).card.parity.precision == "int8"
    if not has_bf16():
        pytest.skip("this CPU has no bf16")
    rt = load(project / "exported" / "model.xml", threads=1, precision="bf16")
    res = check_parity(rt, ref, pixels, labels, limits_for("openvino", "none"))
    assert res.precision == "bf16" and not res.passed  # f32 limits catch a model silently computed in bf16
    assert check_parity(rt, ref, pixels, labels, limits_for("openvino", "bf16")).passed


def test_bf16_is_its_own_artefact(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not has_bf16():
        pytest.skip("this CPU has no bf16")

    out = tmp_path / "ex"
    code, _, err = cli(["export", "--model", str(project / "runs" / "tiny"), "--format", "openvino",
                        "--openvino-precision", "f32,bf16", "--out", str(out)], capsys)
    assert code == 0, err
    f32, bf16 = load(out / "model.xml", threads=1), load(out / "model_bf16.xml", threads=1)
    assert (f32.precision, bf16.precision) == ("f32", "bf16")
    assert bf16.compiled(1).get_property("INFERENCE_PRECISION_HINT").to_string() == "bf16"
    assert bf16.card.precision == "bf16" and bf16.card.quantization.mode == "bf16"
    assert bf16.card.parity.precision == "bf16" and bf16.card.parity.passed
    assert bf16.card.parity.limits.max_dlogit > f32.card.parity.limits.max_dlogit
    code, _, err = cli(["bench", str(out / "model.xml"), str(out / "model_bf16.xml"), "--runtimes", "openvino",
                        "--threads", "1", *FAST, "--json", str(tmp_path / "b.json")], capsys)
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads((tmp_path / "b.json").read_text())["rows"]}
    assert rows["model.xml"]["precision"] == "f32" and rows["model_bf16.xml"]["precision"] == "bf16"


def test_bf16_needs_an_openvino_format(project: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="applies to OpenVINO"):
        export(project / "runs" / "tiny", ["onnx"], ["none"], tmp_path, ExportOptions(openvino_precision=("bf16",)))
    with pytest.raises(UnknownNameError):
        ExportOptions(openvino_precision=("f16",))


@pytest.mark.parametrize("flags,risk", [("fpu sse4_2 avx2 fma", True), ("avx2 avx512f avx512_vnni", False),
                                        ("avx2 avx_vnni", False), ("avx2 amx_int8", False),
                                        ("fp asimd asimddp", False), ("", False)])
def test_int8_overflow_risk_reads_the_cpu_flags(flags: str, risk: bool) -> None:
    from edge_tl.runtimes.openvino_rt import int8_overflow_risk

    assert int8_overflow_risk(f"processor\t: 0\nflags\t\t: {flags}\n") is risk
