"""Proof that the offline weights are real ImageNet weights, through the project's own preprocessing.

scikit-image's ``chelsea`` photo is a tabby cat: ImageNet classes 281-285 (tabby, tiger cat, Persian, Siamese,
Egyptian cat). ``coffee`` is a cup of espresso: class 967. Random weights would land anywhere.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from edge_tl.data.preprocess import load_batch, normalize
from edge_tl.models import create_model, get_spec, imagenet_classes

CATS = range(281, 286)
ESPRESSO = 967


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    skimage_data = pytest.importorskip("skimage.data")
    d = tmp_path_factory.mktemp("photos")
    paths = {"chelsea": d / "chelsea.png", "coffee": d / "coffee.png"}
    Image.fromarray(skimage_data.chelsea()).save(paths["chelsea"])
    Image.fromarray(skimage_data.coffee()).save(paths["coffee"])
    return paths


def test_imagenet_class_names():
    names = imagenet_classes()
    assert len(names) == 1000
    assert names[281] == "tabby" and names[285] == "Egyptian cat" and names[ESPRESSO] == "espresso"
    assert len(set(names)) == 1000  # unique: usable as a model card's classes


@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet_lite0"])
def test_offline_weights_recognise_cat_and_espresso(name, photos):
    model = create_model(name)  # weights="default": resolved offline, hash verified
    assert model.weights_info is not None and model.weights_info.source.startswith("package:")
    spec = model.input_spec
    assert spec == get_spec(name).input_spec()
    pixels = load_batch([photos["chelsea"], photos["coffee"]], spec)
    assert pixels.shape == (2, 224, 224, 3) and pixels.dtype == np.uint8
    with torch.no_grad():
        probs = model(torch.from_numpy(normalize(pixels, spec))).softmax(-1).numpy()
    cat, coffee = probs.argmax(-1)
    assert cat in CATS, imagenet_classes()[cat]
    assert coffee == ESPRESSO, imagenet_classes()[coffee]
    assert probs[0, list(CATS)].sum() > 0.8 and probs[1, ESPRESSO] > 0.8

