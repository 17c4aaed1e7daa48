"""The train path: frozen-feature extraction (decode + preprocessing + ONNX backbone) and the head fit."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def model_and_files(run_dir):
    from edge_tl.card import ModelCard
    from edge_tl.data.manifest import manifest_for_card
    from edge_tl.models import create_model

    card = ModelCard.load(run_dir / "card.json")
    model = create_model(card.backbone, num_classes=len(card.classes), weights="none", img_size=card.input.size)
    return model.eval(), card.input, manifest_for_card(card, run_dir / "card.json").files("train")[:32]


def test_feature_extraction(benchmark, model_and_files):
    from edge_tl.train.features import extract

    model, spec, files = model_and_files
    extract(model, spec, files[:4], engine="onnx", threads=1, use_cache=False)  # the one-off backbone export
    feats, _ = benchmark.pedantic(extract, args=(model, spec, files),
                                  kwargs={"engine": "onnx", "threads": 1, "use_cache": False},
                                  rounds=5, warmup_rounds=1)
    benchmark.extra_info.update(images=len(files), threads=1)
    assert feats.shape[0] == len(files)


def test_head_fit(benchmark):
    from edge_tl.train.head import fit_logistic

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 256)
    x = (rng.normal(size=(256, 1280)) + y[:, None] * 0.2).astype(np.float32)
    fit = benchmark(fit_logistic, x, y, 2, 1e-3)
    assert fit is not None
