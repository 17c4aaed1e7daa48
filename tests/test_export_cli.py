"""`edge-tl export` end to end: defaults, table, --force, reuse, --json, and one-line errors with exit 2."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from edge_tl import parity
from edge_tl.card import ModelCard, sidecar_path
from edge_tl.cli.export_cmd import _report_budget
from edge_tl.data.manifest import Manifest
from edge_tl.export.registry import INT8_PREPS
from edge_tl.models.checkpoint import load_checkpoint, save_checkpoint
from edge_tl.progress import Recorder
from edge_tl.records import BudgetRecord
from helpers import cards
from helpers.cli import cli
from helpers.models import export_onnx, sample_run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_run(tmp_path_factory.mktemp("cli"), "runs/tiny")


def test_bare_export_writes_model_onnx_from_runs_latest(run: Path, tmp_path: Path, monkeypatch, capsys):
    (tmp_path / "runs").mkdir()
    os.symlink(run, tmp_path / "runs" / "latest")
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(["export"], capsys)
    assert code == 0, err
    assert (tmp_path / "exported" / "model.onnx").is_file()
    assert (tmp_path / "exported" / "model.onnx.card.json").is_file()
    assert "model.onnx" in out and "pass" in out and "agree %" in out and "saturated %" in out

    code, _, err = cli(["export"], capsys)  # existing file: refused, nothing touched
    assert code == 2 and err.strip().count("\n") == 0
    assert "already exists" in err and "--force" in err
    mtime = (tmp_path / "exported" / "model.onnx").stat().st_mtime_ns

    # bare --quantize = int8 (a tiny model on 18 images: one flip is 5.6 %, so agreement is loosened)
    code, out, err = cli(["export", "--quantize", "--calib-size", "8", "--min-agreement", "80"], capsys)
    assert code == 0, err
    assert (tmp_path / "exported" / "model_int8.onnx").is_file()
    assert "reused" in err and (tmp_path / "exported" / "model.onnx").stat().st_mtime_ns == mtime

    code, _, err = cli(["export", "--force"], capsys)
    assert code == 0 and (tmp_path / "exported" / "model.onnx").stat().st_mtime_ns != mtime, err


def test_json_and_no_verify(run: Path, tmp_path: Path, capsys):
    out_dir = tmp_path / "ex"
    code, out, err = cli(["export", "--model", str(run), "--out", str(out_dir), "--quantize", "dynamic",
                          "--no-verify", "--json", str(tmp_path / "r.json")], capsys)
    assert code == 0, err
    data = json.loads((tmp_path / "r.json").read_text())
    assert [Path(a["path"]).name for a in data["artifacts"]] == ["model.onnx", "model_dynamic.onnx"]
    assert data["parity"] == [] and all(a["parity"] is None for a in data["artifacts"])
    assert "5-16x slower" in err  # dynamic int8 warns
    assert "not verified" in out


def test_no_calibration_images(run: Path, tmp_path: Path, capsys):
    bad = tmp_path / "run"
    shutil.copytree(run, bad)
    m = Manifest.load(bad / "split.json")
    items = tuple(it.__class__(it.path, it.sha256, it.label, "test") for it in m.items)
    m.__class__(**{**m.__dict__, "items": items}).save(bad / "split.json")
    card = ModelCard.load(bad / "card.json")
    model, _ = load_checkpoint(bad / "model.pt")
    save_checkpoint(bad / "model.pt", model, card.with_(run_dir=str(bad)))
    code, _, err = cli(["export", "--model", str(bad), "--out", str(tmp_path / "o"), "--quantize", "int8"], capsys)
    assert code == 2 and "no calibration images" in err
    assert not list((tmp_path / "o").glob("*.onnx"))  # checked before any conversion starts


def test_parity_failure_prints_table_and_exits_nonzero(run: Path, tmp_path: Path, capsys, monkeypatch):
    # A drop limit no quantised model can meet on this tiny set is not the point; an impossible saturation
    # limit is not either. Use the logit tolerance instead: fp16 cannot match fp32 to 0 difference.
    monkeypatch.setitem(parity.FLOAT_ATOL, ("onnx", "fp16"), 1e-9)
    code, out, err = cli(["export", "--model", str(run), "--out", str(tmp_path / "p"), "--quantize", "fp16"], capsys)
    assert code == 2
    assert "model_fp16.onnx" in out and "FAIL" in out
    assert "error: parity failed: model_fp16.onnx: " in err and "max |dlogit|" in err


def test_json_to_stdout_is_pure_json(run: Path, tmp_path: Path, capsys):
    code, out, err = cli(["export", "--model", str(run), "--out", str(tmp_path / "j"), "--json", "-"], capsys)
    assert code == 0, err
    data = json.loads(out)  # the table went to stderr
    assert data["passed"] is True and data["parity"][0]["variant"] == "model.onnx"
    assert "model.onnx" in err


@pytest.mark.parametrize(("choice", "steps"), [("bias", "bias"), ("none", "none")])
def test_int8_prep_flag_reaches_the_card(run: Path, tmp_path: Path, capsys, choice: str, steps: str):
    out_dir = tmp_path / "ex"
    code, _, err = cli(["export", "--model", str(run), "--out", str(out_dir), "--quantize", "int8", "--calib-size",
                        "8", "--min-agreement", "50", "--max-drop", "100", "--int8-prep", choice, "--no-verify"], capsys)
    assert code == 0, err
    prep = ModelCard.load(sidecar_path(out_dir / "model_int8.onnx")).quantization.prep
    assert prep.choice == choice and prep.steps == steps
    if steps == "bias":
        assert prep.details["bias_correction"]["layers"] > 0


def test_int8_prep_help_and_bad_value(capsys):
    code, out, _ = cli(["export", "--help"], capsys)
    assert code == 0 and "--int8-prep" in out and "--openvino-precision" in out
    assert all(p in out for p in INT8_PREPS)
    code, _, err = cli(["export", "--int8-prep", "cle+bc"], capsys)
    assert code == 2 and "cle+bias" in err


@pytest.mark.parametrize("reporter", [Recorder, None])
def test_export_reports_calibration_through_the_reporter_only(run: Path, tmp_path: Path, capfd, reporter):
    rec = reporter() if reporter else None
    export_onnx(run, ["int8"], tmp_path / "ex", rec, calib_size=8, verify=False, fallback=False)
    assert "calibrating" not in capfd.readouterr().err  # the library draws nothing, with or without a reporter
    if rec is not None:
        calib = [t for t in rec.tasks if t["description"] == "calibrating"]
        assert calib and all(t["finished"] and t["done"] == t["total"] == 8 for t in calib)
        assert any("exporting" in m for _, m in rec.notes)


def test_cli_prints_both_budget_repairs():
    cands = {"nncf_accuracy_control": {"int8_accuracy": 0.896, "drop": 0.4, "agreement": 0.99, "latency_ms": 3.5,
                                       "fallback_layers": ["a"], "fits": True},
             "edge_tl_fallback": {"int8_accuracy": 0.898, "drop": 0.2, "agreement": 0.995, "latency_ms": 3.1,
                                  "fallback_layers": ["a", "b"], "fits": True}}
    budget = BudgetRecord.from_json({"max_drop": 0.5, "min_agreement": 0.98, "split": "val+train", "images": 100,
                                     "float_accuracy": 0.9, "int8_accuracy": 0.898, "drop": 0.2, "agreement": 0.995,
                                     "fits": True, "method": "edge_tl_fallback", "candidates": cands})
    art = SimpleNamespace(path=Path("model_int8.xml"), card=SimpleNamespace(quantization=cards.recipe(budget=budget)))
    con = Console(record=True, width=200)
    _report_budget(art, con)
    lines = con.export_text().splitlines()
    assert len(lines) == 2 and all(ln.startswith("budget model_int8.xml: ") for ln in lines)
    assert lines[1].endswith("fits, kept") and "kept" not in lines[0] and "2 layer(s) float" in lines[1]
    assert "3.10 ms" in lines[1] and "drop 0.40 pt" in lines[0]
