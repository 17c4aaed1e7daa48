"""Frozen-feature extraction: ONNX Runtime equals the PyTorch backbone; the on-disk cache hits, misses and is
invalidated by image content, transform and weights."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from edge_tl.data.preprocess import load_batch, normalize
from edge_tl.models import create_model
from edge_tl.train.features import cache_root, extract, image_sha, weights_hash


def _files(sample_dir: Path, n: int) -> list[Path]:
    files = sorted(sample_dir.rglob("*.jpg")) + sorted(sample_dir.rglob("*.png"))
    assert len(files) >= n
    return sorted(files)[:n]


def _model(name: str = "tiny_cnn", seed: int = 0, img_size: int = 32):
    torch.manual_seed(seed)
    return create_model(name, num_classes=3, weights="none", img_size=img_size)


def test_onnx_features_match_torch(sample_dir: Path) -> None:
    # tiny_mobilenet: depthwise convolutions and BatchNorm, the ops mobilenet_v2 is made of, its ``features``
    # exported alone (tiny_cnn's ONNX path is covered end to end by the tiny_run fixture)
    model = _model("tiny_mobilenet")
    files = _files(sample_dir, 10)
    onnx, st = extract(model, model.input_spec, files, engine="onnx", use_cache=False)
    x = torch.from_numpy(normalize(load_batch(files, model.input_spec), model.input_spec))
    with torch.no_grad():
        ref = model.eval().forward_features(x).numpy()
    got = onnx[:, 0]
    assert got.shape == ref.shape == (10, model.feature_dim)
    cos = (got * ref).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))
    assert cos.min() > 0.9999
    assert np.abs(got - ref).max() < 1e-4 * max(1.0, np.abs(ref).max())
    assert st.misses == 10 and st.hits == 0


def test_cache_hit_miss_and_root(sample_dir: Path) -> None:
    model = _model(seed=1)
    files = _files(sample_dir, 8)
    a, st1 = extract(model, model.input_spec, files, engine="torch")
    b, st2 = extract(model, model.input_spec, files, engine="torch")
    assert (st1.hits, st1.misses) == (0, 8)
    assert (st2.hits, st2.misses) == (8, 0)
    np.testing.assert_array_equal(a, b)
    root = Path(os.environ["EDGE_TL_CACHE"])
    assert cache_root() == root
    assert len(list((root / "features").rglob(f"{image_sha(files[0])}.npy"))) >= 1


def test_cache_invalidated_by_content_transform_and_weights(sample_dir: Path, tmp_path: Path) -> None:
    model = _model(seed=2)
    files = []
    for f in _files(sample_dir, 6):
        dst = tmp_path / f.name
        shutil.copy(f, dst)
        files.append(dst)
    base, _ = extract(model, model.input_spec, files, engine="torch")
    # content change of one image: only it misses, and its feature changes
    im = np.asarray(Image.open(files[0]).convert("RGB")).copy()
    im[:, : im.shape[1] // 2] = 255 - im[:, : im.shape[1] // 2]
    Image.fromarray(im).save(files[0], format=Image.open(files[0]).format or "PNG")
    again, st = extract(model, model.input_spec, files, engine="torch")
    assert (st.hits, st.misses) == (5, 1)
    assert not np.allclose(again[0], base[0])
    np.testing.assert_array_equal(again[1:], base[1:])
    # a new transform (input size) misses everything
    spec40 = create_model("tiny_cnn", num_classes=3, weights="none", img_size=40).input_spec
    _, st = extract(model, spec40, files, engine="torch")
    assert (st.hits, st.misses) == (0, 6)
    # other weights miss everything
    other = _model(seed=3)
    assert weights_hash(other.features) != weights_hash(model.features)
    _, st = extract(other, other.input_spec, files, engine="torch")
    assert (st.hits, st.misses) == (0, 6)


def test_augmented_views_are_cached_and_deterministic(sample_dir: Path) -> None:
    model = _model(seed=4)
    files = _files(sample_dir, 4)
    a, st1 = extract(model, model.input_spec, files, views=2, engine="torch")
    assert a.shape == (4, 3, model.feature_dim) and st1.misses == 12
    assert not np.allclose(a[:, 1], a[:, 0]) and not np.allclose(a[:, 1], a[:, 2])
    b, st2 = extract(model, model.input_spec, files, views=2, engine="torch")
    assert st2.hits == 12
    np.testing.assert_array_equal(a, b)
    c, _ = extract(model, model.input_spec, files, views=2, engine="torch", use_cache=False)
    np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6)


def test_empty_input() -> None:
    model = _model(seed=5)
    arr, st = extract(model, model.input_spec, [], engine="torch")
    assert arr.shape[0] == 0 and st.misses == 0
