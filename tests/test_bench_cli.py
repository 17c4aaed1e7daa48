"""``edge-tl bench`` end to end on a real tiny run (PyTorch checkpoint + ONNX export), and a damaged artefact
(its bad-input errors are rows of ``test_reliability_bad_input``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_tl._cpu import usable_cores
from edge_tl.bench.targets import discover
from edge_tl.data.manifest import manifest_for_card
from edge_tl.data.preprocess import load_batch
from edge_tl.runtimes import load
from edge_tl.runtimes.timing import timed_call
from helpers.cli import cli
from helpers.export_fixtures import build_run

FAST = ["--min-time", "0.05", "--warmup", "2"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> Path:
    """A folder with runs/tiny (tiny_cnn, 32 px) and exported/model.{onnx,tflite} made by the real exporter."""
    from edge_tl.export.api import export

    root = tmp_path_factory.mktemp("bench_cli")
    run = build_run(root / "runs" / "tiny", sample_dir, steps=30)
    export(run, formats=("onnx", "tflite"), quantize=("none",), out_dir=root / "exported")
    return root


def test_bench_end_to_end(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    o = tmp_path
    n = min(64, usable_cores())
    code, out, err = cli(["bench", "--exported", str(project / "exported"), "--threads", "64", *FAST,
                          "--json", str(o / "b.json"), "--csv", str(o / "b.csv"), "--md", str(o / "b.md"),
                          "--plot", str(o / "b.png")], capsys)
    assert code == 0, err
    assert "--threads 64 is more than the" in err and "capped" in err
    assert "model.onnx" in out and "model.pt" in out and "* recommended:" in out
    d = json.loads((o / "b.json").read_text())
    rows = {(r["name"], r["runtime"]): r for r in d["rows"]}
    assert set(rows) == {("model.pt", "pytorch"), ("model.onnx", "onnxruntime"), ("model.tflite", "litert"),
                         ("model.onnx", "openvino"), ("model.tflite", "openvino")}  # openvino runs both files
    assert all(r["status"] == "ok" and r["loop"] == "engine" and r["threads"] == n for r in rows.values())
    assert all(r["precision"] == "f32" and r["agreement"] == 100.0 for r in rows.values())
    pt, onnx = rows["model.pt", "pytorch"], rows["model.onnx", "onnxruntime"]
    # float export: same top-1 everywhere (agreement 100 on every row, above)
    assert onnx["top1"] == pt["top1"] and onnx["n_eval"] == pt["n_eval"] > 0
    assert onnx["macs"] == pt["macs"] == rows["model.tflite", "litert"]["macs"] > 0 and onnx["params"] > 0
    assert onnx["latency"]["p50"]["low"] <= onnx["latency"]["p50"]["value"] <= onnx["latency"]["p50"]["high"]
    assert onnx["gflops"] > 0 and onnx["peak_rss_mb"] < pt["peak_rss_mb"]
    assert d["recommended"] in {f"{name}/{rt}@{n}t" for name, rt in rows}
    assert "test split" in d["data"]
    assert (o / "b.png").stat().st_size > 0 and (o / "b.csv").read_text().count("\n") == 6
    assert (o / "b.md").read_text().startswith("| ")


def test_damaged_artefact_gets_an_error_row(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes((project / "exported" / "model.onnx").read_bytes()[:300])
    code, out, err = cli(["bench", str(bad), str(project / "exported" / "model.onnx"), "--threads", "1", *FAST,
                          "--json", "-"], capsys)
    assert code == 0, err
    d = json.loads(out)
    by_name = {r["name"]: r for r in d["rows"]}
    assert by_name["broken.onnx"]["status"] == "error"
    assert "not a valid ONNX model" in by_name["broken.onnx"]["error"]
    assert by_name["model.onnx"]["status"] == "ok"
    assert "broken.onnx" in err  # the table went to stderr, the JSON owns stdout


@pytest.mark.parametrize("name", ["runs/tiny/model.pt", "exported/model.onnx", "exported/model.tflite"])
def test_engine_call_computes_what_the_runtime_computes(project: Path, name: str) -> None:
    """The timed loop runs the engine on a pre-normalised input: it must be the same computation."""
    rt = load(project / name, threads=1)
    pixels = load_batch(manifest_for_card(rt.card).files("test")[:1], rt.card.input)
    call = timed_call(rt, pixels)
    assert call.loop == "engine"
    with call.context():
        out = call.fn()
    if rt.name == "litert":
        out = rt.interpreter.get_tensor(rt.interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(np.asarray(out, dtype=np.float32), rt(pixels), rtol=1e-5, atol=1e-5)


def test_discover_brings_the_source_checkpoint(project: Path) -> None:
    found = discover([str(project / "exported")])
    assert found[0].resolve() == (project / "runs" / "tiny" / "model.pt").resolve()
    assert sorted(p.name for p in found[1:]) == ["model.onnx", "model.tflite"]
    assert discover([], project / "exported") == found
