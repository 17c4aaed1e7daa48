"""``edge-tl eval`` of exported files: accuracy, per-class accuracy and confusion matrix of the file that ships,
through its own runtime, on a labelled folder (bad files skipped and listed) or on its run's split."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers.cli import cli
from helpers.export_fixtures import build_run

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from edge_tl.data.sample import generate_sample
    from edge_tl.export.api import export
    from edge_tl.export.registry import ExportOptions

    root = tmp_path_factory.mktemp("eval_art")
    sample = generate_sample(root / "sample", per_class=6, size=40)
    run = build_run(root / "run", sample, steps=40)
    export(run, ["onnx", "tflite"], ["none"], root / "exported", ExportOptions(verify=False))
    photos = root / "photos"
    shutil.copytree(sample, photos)
    first = sorted(p for p in photos.iterdir() if p.is_dir())[0]
    (first / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return {"run": run, "out": root / "exported", "photos": photos, "broken": first / "broken.jpg"}


def _expected(path: Path, photos: Path) -> tuple[float, int]:
    """Accuracy of the file's runtime on the readable images, computed here without edge-tl's eval."""
    from PIL import Image

    from edge_tl.data.preprocess import load_batch
    from edge_tl.runtimes import load

    rt = load(path)
    files, labels = [], []
    for d in sorted(p for p in photos.iterdir() if p.is_dir()):
        for f in sorted(d.iterdir()):
            try:
                Image.open(f).load()
            except OSError:
                continue
            files.append(f)
            labels.append(rt.card.classes.index(d.name))
    pred = rt(load_batch(files, rt.card.input)).argmax(1)
    return float((pred == np.asarray(labels)).mean()), len(files)


@pytest.mark.parametrize("name", ["model.onnx", "model.tflite"])
def test_eval_an_exported_file_on_a_folder(setup, name: str, tmp_path: Path, capsys) -> None:
    path = setup["out"] / name
    res = cli(["eval", "--model", str(path), "--data", str(setup["photos"]), "--quiet",
               "--plot", str(tmp_path / "cm.png"), "--json", str(tmp_path / "r.json")], capsys)
    assert res.code == 0, res.text
    data = json.loads((tmp_path / "r.json").read_text())
    acc, n = _expected(path, setup["photos"])
    assert data["runtime"] == ("onnxruntime" if name.endswith(".onnx") else "litert")
    assert data["images"] == n and data["accuracy"] == pytest.approx(acc)
    assert data["bad_files"] == 1 and data["skipped"][0]["path"] == str(setup["broken"])
    assert "broken.jpg" in res.text and (tmp_path / "cm.png").stat().st_size > 0
    assert sum(map(sum, data["confusion"])) == n


def test_eval_an_exported_file_on_its_runs_split(setup) -> None:
    from edge_tl.train.evaluate import evaluate

    path = setup["out"] / "model.onnx"
    res = evaluate(path, progress=False)
    assert res.source.endswith(":test") and res.runtime == "onnxruntime"
    assert Path(res.plot) == path.with_name("model.onnx.eval_confusion.png") and Path(res.plot).exists()
    run_res = evaluate(setup["run"], progress=False, plot=Path(res.plot).with_name("run.png"))
    assert res.report.total == run_res.report.total  # the same images as the run's own eval
    assert abs(res.accuracy - run_res.accuracy) <= 1.0 / res.report.total + 1e-9


def test_eval_an_artefact_without_data_or_run_says_so(setup, tmp_path: Path, capsys) -> None:
    from edge_tl.card import ModelCard, sidecar_path
    from edge_tl.export.onnx_export import write_onnx_card

    path = tmp_path / "model.onnx"
    shutil.copy(setup["out"] / "model.onnx", path)
    write_onnx_card(path, ModelCard.load(sidecar_path(setup["out"] / "model.onnx")).with_(run_dir="/gone/run"))
    res = cli(["eval", "--model", str(path), "--quiet"], capsys)
    assert res.code == 2 and "--data" in res.text
