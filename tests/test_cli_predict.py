"""``edge-tl predict``: backbones, model files, JSON, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import cards
from helpers.cli import cli


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    d = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    paths = []
    for i, size in enumerate([(40, 48), (64, 64), (300, 200)]):
        p = d / f"img{i}.{'png' if i % 2 else 'jpg'}"
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


@pytest.fixture(scope="module")
def chelsea(tmp_path_factory) -> Path:
    skimage_data = pytest.importorskip("skimage.data")
    p = tmp_path_factory.mktemp("photo") / "chelsea.jpg"
    Image.fromarray(skimage_data.chelsea()).save(p, quality=95)
    return p


def test_tiny_backbone_random_init_json_schema(images, tmp_path, capsys):
    out_json = tmp_path / "pred.json"
    code, out, err = cli(["predict", *map(str, images), "--backbone", "tiny_cnn", "--weights", "none",
                          "--top", "3", "--json", str(out_json)], capsys)
    assert code == 0, err
    data = json.loads(out_json.read_text())
    assert set(data) == {"model", "runtime", "weights", "top", "images", "warnings"}
    assert (data["model"], data["runtime"], data["weights"], data["top"]) == ("tiny_cnn", "pytorch", "random", 3)
    assert [i["path"] for i in data["images"]] == [str(p) for p in images]
    for img in data["images"]:
        preds = img["predictions"]
        assert [p["rank"] for p in preds] == [1, 2, 3]
        assert set(preds[0]) == {"rank", "index", "label", "probability"}
        probs = [p["probability"] for p in preds]
        assert probs == sorted(probs, reverse=True) and 0 < probs[0] <= 1
        assert all(0 <= p["index"] < 1000 for p in preds)
    assert str(images[0]) in out and "rank" in out  # a table per image


def test_mobilenet_v2_names_the_cat(chelsea, capsys):
    code, out, err = cli(["predict", str(chelsea), "--top", "2", "--threads", "1", "--json", "-"], capsys)
    assert code == 0, err
    data = json.loads(out)  # with --json - stdout is the JSON only
    top = data["images"][0]["predictions"][0]
    assert data["model"] == "mobilenet_v2" and data["weights"].startswith("mobilenet_v2-b0353104.pth@b0353104")
    assert 281 <= top["index"] <= 285 and top["label"] in {"tabby", "tiger cat", "Persian cat", "Siamese cat",
                                                             "Egyptian cat"}


@pytest.mark.parametrize("args,words", [
    (["{img}", "--backbone", "resnet19"], ["unknown backbone 'resnet19'", "did you mean 'resnet18'"]),
    (["{img}", "{tmp}/notes.jpg", "--backbone", "tiny_cnn", "--json", "{tmp}/never.json"],
     ["{tmp}/notes.jpg", "not a readable image"]),  # a text file named .jpg
    (["{img}", "--backbone", "tiny_cnn", "--model", "{tmp}"], ["exclude each other"]),
])
def test_bad_input_exits_2_on_one_line(images, tmp_path, capsys, args, words):
    """A missing image (a usage error) is a row of ``test_reliability_bad_input``."""
    (tmp_path / "notes.jpg").write_text("this is text, not a JPEG")
    fill = {"img": images[0], "tmp": tmp_path}
    code, _, err = cli(["predict", *(a.format(**fill) for a in args)], capsys)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert all(w.format(**fill) in err for w in words), err
    assert not (tmp_path / "never.json").exists()  # nothing half-written


def _checkpoint(tmp_path: Path, parity: dict | None) -> Path:
    import torch

    from edge_tl.card import now_iso
    from edge_tl.models import create_model, get_spec
    from edge_tl.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = create_model("tiny_cnn", num_classes=3)
    with torch.no_grad():  # make class 'dog' win for every image: bias dominates
        model.head.bias.copy_(torch.tensor([0.0, 9.0, 0.0]))
    spec = get_spec("tiny_cnn").input_spec(32)
    card = cards.card("pytorch", ("cat", "dog", "bird"), spec=spec, weights="random", parity=parity, created=now_iso())
    return save_checkpoint(tmp_path / "model.pt", model, card)


def test_model_file_uses_card_classes(images, tmp_path, capsys):
    ckpt = _checkpoint(tmp_path, parity=None)
    code, out, err = cli(["predict", *map(str, images[:2]), "--model", str(ckpt), "--top", "5", "--json", "-"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["runtime"] == "pytorch" and data["warnings"] == []
    for img in data["images"]:
        assert img["predictions"][0]["label"] == "dog"
        assert len(img["predictions"]) == 3  # --top is capped at the number of classes
    code, _, err = cli(["predict", str(images[0]), "--model", str(ckpt), "--weights", "none"], capsys)
    assert code == 2 and "--weights applies to --backbone only" in err


def test_saturated_int8_outputs_warn(images, tmp_path, capsys):
    ckpt = _checkpoint(tmp_path, parity=cards.parity(saturated=0.64))
    code, _, err = cli(["predict", str(images[0]), "--model", str(ckpt)], capsys)
    assert code == 0, err
    assert "warning:" in err and "64.0%" in err and "saturated" in err


def test_saturation_threshold():
    from edge_tl.runtimes.predict import saturation_warning

    assert saturation_warning(None) is None
    assert saturation_warning(cards.parity(saturated=0.001)) is None
    assert saturation_warning(cards.parity(saturated=0.002)) is not None


def test_failed_parity_warns(images, tmp_path, capsys):
    ckpt = _checkpoint(tmp_path, parity=cards.parity(failures=("agreement 95.83 % < 98.00 %",)))
    code, out, err = cli(["predict", str(images[0]), "--model", str(ckpt), "--json", "-"], capsys)
    assert code == 0, err
    assert "failed its parity check" in err and "agreement 95.83 %" in err
    assert json.loads(out)["warnings"] == ["this artefact failed its parity check at export: agreement 95.83 % < 98.00 %"]

