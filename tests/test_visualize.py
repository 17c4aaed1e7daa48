"""``edge-tl visualize``: total variation, class resolution and the command end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_tl.attacks.visualize import VisualizeSettings, resolve_classes, total_variation
from edge_tl.errors import ConfigError
from helpers.cli import cli

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def pixel_run_model(tiny_run: Path):
    from edge_tl.attacks.pixels import pixel_model
    from edge_tl.models.checkpoint import load_checkpoint

    model, card = load_checkpoint(tiny_run / "model.pt")
    module = pixel_model(model, card.input.mean, card.input.std)
    for p in module.parameters():
        p.requires_grad_(False)
    return module, card


def test_total_variation_of_known_images() -> None:
    assert total_variation(np.full((8, 8, 3), 77, np.uint8)) == 0.0
    stripes = np.zeros((4, 4, 3), np.uint8)
    stripes[:, ::2] = 255  # every horizontal neighbour differs by 1, vertical ones by 0
    assert total_variation(stripes) == pytest.approx(1.0)


def test_tv_penalty_makes_smoother_images_that_still_score(pixel_run_model) -> None:
    from edge_tl.attacks.visualize import ideal_image

    module, card = pixel_run_model
    rough = ideal_image(module, 0, 32, VisualizeSettings.preset("pixel", steps=40, tv_weight=0.0, seed=1))
    smooth = ideal_image(module, 0, 32, VisualizeSettings.preset("pixel", steps=40, tv_weight=1.0, seed=1))
    assert rough.image.shape == (32, 32, 3) and rough.image.dtype == np.uint8
    assert smooth.total_variation < 0.7 * rough.total_variation
    assert rough.probability > 1.0 / card.num_classes  # the ascent raised the class above chance


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
    from edge_tl.cli.visualize_cmd import _load_judge

    with pytest.raises(ConfigError, match="other classes"):
        _load_judge(str(tiny_run), ["zebra", "tabby"])
