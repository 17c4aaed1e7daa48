"""``edge-tl visualize``: total variation, class resolution and the command end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_tl.attacks.visualize import VisualizeSettings, resolve_classes, total_variation
from edge_tl.errors import ConfigError
from edge_tl.progress import Recorder
from helpers.cli import cli

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def pixel_run_model(tiny_run: Path):
    from edge_tl.attacks.visualize_api import load_model

    return load_model(tiny_run, None)


def test_total_variation_of_known_images() -> None:
    assert total_variation(np.full((8, 8, 3), 77, np.uint8)) == 0.0
    stripes = np.zeros((4, 4, 3), np.uint8)
    stripes[:, ::2] = 255  # every horizontal neighbour differs by 1, vertical ones by 0
    assert total_variation(stripes) == pytest.approx(1.0)


def test_tv_penalty_makes_smoother_images_that_still_score(pixel_run_model) -> None:
    from edge_tl.attacks.visualize import ideal_image

    module, classes = pixel_run_model.module, pixel_run_model.classes
    rough = ideal_image(module, 0, 32, VisualizeSettings.preset("pixel", steps=40, tv_weight=0.0, seed=1))
    smooth = ideal_image(module, 0, 32, VisualizeSettings.preset("pixel", steps=40, tv_weight=1.0, seed=1))
    assert rough.image.shape == (32, 32, 3) and rough.image.dtype == np.uint8
    assert smooth.total_variation < 0.7 * rough.total_variation
    assert rough.probability > 1.0 / len(classes)  # the ascent raised the class above chance


def test_resolve_classes_by_name_and_index() -> None:
    assert resolve_classes(["b", "a"], ["a", "b", "c"]) == [1, 0]
    assert resolve_classes(["2"], [f"c{i}" for i in range(50)]) == [2]
    with pytest.raises(ConfigError, match="unknown class 'zebr'") as exc:
        resolve_classes(["zebr"], ["zebra", "cat"])
    assert "did you mean 'zebra'" in exc.value.hint and "cat" in exc.value.hint
    with pytest.raises(ConfigError):
        VisualizeSettings(steps=0)


def test_visualize_run_grid_end_to_end(tiny_run, tmp_path, capsys) -> None:
    classes = json.loads((tiny_run / "card.json").read_text())["classes"]
    png = tmp_path / "ideal.png"
    code, out, err = cli(["visualize", "--model", str(tiny_run), "--class", f"{classes[0]},{classes[1]}",
                          "--steps", "5", "--out", str(png), "--json", "-"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert [im["class"] for im in data["images"]] == classes[:2]
    assert all(0.0 <= im["probability"] <= 1.0 for im in data["images"])
    assert data["size"] == 32
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_visualize_judged_by_a_second_model_and_pixel_method(tiny_run, tmp_path, capsys) -> None:
    classes = json.loads((tiny_run / "card.json").read_text())["classes"]
    png = tmp_path / "ideal.png"
    code, out, err = cli(["visualize", "--model", str(tiny_run), "--class", classes[2], "--steps", "4",
                          "--param", "pixel", "--judge", str(tiny_run), "--out", str(png), "--json", "-"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["settings"]["param"] == "pixel" and data["settings"]["steps"] == 4 and data["judge"] == tiny_run.name
    im = data["images"][0]
    assert im["judged"]["probability"] == pytest.approx(im["probability"])  # the same model, the same image
    assert 1 <= im["judged"]["rank"] <= len(classes) and im["judged"]["top"] in classes
    assert "rank" in err and png.exists()  # the table went to stderr with --json -


def test_visualize_judge_must_share_the_classes(tiny_run) -> None:
    from edge_tl.attacks.visualize_api import load_judge

    with pytest.raises(ConfigError, match="other classes"):
        load_judge(str(tiny_run), ["zebra", "tabby"])


def test_visualize_api_reports_through_the_reporter_only(tiny_run, tmp_path, capfd) -> None:
    from edge_tl.attacks.visualize_api import VisualizeRequest, visualize

    classes = json.loads((tiny_run / "card.json").read_text())["classes"]
    rec = Recorder()
    req = VisualizeRequest(classes=(classes[1], "0"), model=tiny_run, out=tmp_path / "grid.png",
                           settings=VisualizeSettings.preset(steps=3))
    res = visualize(req, reporter=rec)
    assert [im.name for im in res.images] == [classes[1], classes[0]] and res.size == 32 and res.judge is None
    assert res.out.read_bytes()[:4] == b"\x89PNG" and res.to_json()["images"][0]["class"] == classes[1]
    assert [(t["description"], t["done"], t["finished"]) for t in rec.tasks] == [
        (f"ideal '{classes[1]}'", 3, True), (f"ideal '{classes[0]}'", 3, True)]
    assert capfd.readouterr() == ("", "")  # a library call prints nothing
    for bad in ({}, {"model": tiny_run, "backbone": "mobilenet_v2"}):
        with pytest.raises(ConfigError, match="exactly one of --model and --backbone"):
            VisualizeRequest(classes=("cat",), **bad)
    with pytest.raises(ConfigError, match="--weights applies to --backbone"):
        VisualizeRequest(classes=("cat",), model=tiny_run, weights="w.pt")
