"""The synthetic `sample` dataset: deterministic, varied, cached once, safe against half-written folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_tl._io import sha256_file
from edge_tl.data.sample import CLASSES, MARKER, default_sample_dir, generate_sample
from edge_tl.errors import DataError


def _hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(root.rglob("*.jpg"))}


def test_layout_and_sizes(tmp_path):
    root = generate_sample(tmp_path / "s", per_class=3, size=48)
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted(CLASSES)
    files = sorted(root.rglob("*.jpg"))
    assert len(files) == 3 * len(CLASSES)
    for f in files:
        with Image.open(f) as im:
            assert im.format == "JPEG" and im.size == (48, 48) and im.mode == "RGB"


def test_deterministic_byte_for_byte(tmp_path):
    a = generate_sample(tmp_path / "a", per_class=4, size=48, seed=3)
    b = generate_sample(tmp_path / "b", per_class=4, size=48, seed=3)
    assert _hashes(a) == _hashes(b)
    c = generate_sample(tmp_path / "c", per_class=4, size=48, seed=4)
    assert set(_hashes(a).values()).isdisjoint(_hashes(c).values())


def test_images_vary_within_a_class(tmp_path):
    """Colour is no shortcut: the mean colour of one class spreads as widely as across classes."""
    root = generate_sample(tmp_path / "s", per_class=12, size=48)
    means = {c: np.array([np.asarray(Image.open(f), np.float32).mean(axis=(0, 1))
                          for f in sorted((root / c).glob("*.jpg"))]) for c in CLASSES}
    within = np.mean([m.std(axis=0).mean() for m in means.values()])
    between = np.stack([m.mean(axis=0) for m in means.values()]).std(axis=0).mean()
    assert within > 20 and within > 2 * between
    hashes = _hashes(root)
    assert len(set(hashes.values())) == len(hashes)  # no two images alike


def test_reused_when_already_there(tmp_path):
    root = generate_sample(tmp_path / "s", per_class=2, size=32)
    f = next(root.rglob("*.jpg"))
    mtime = f.stat().st_mtime_ns
    assert generate_sample(root, per_class=2, size=32) == root
    assert f.stat().st_mtime_ns == mtime
    assert json.loads((root / MARKER).read_text())["per_class"] == 2
    generate_sample(root, per_class=3, size=32)  # regenerated when the parameters change
    assert len(list(root.rglob("*.jpg"))) == 3 * len(CLASSES)


def test_existing_empty_folder_is_used_and_no_temp_folder_is_left(tmp_path):
    (tmp_path / "s").mkdir()
    generate_sample(tmp_path / "s", per_class=1, size=32)
    assert len(list(tmp_path.rglob("*.jpg"))) == len(CLASSES)
    assert [p.name for p in tmp_path.iterdir()] == ["s"]


def test_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        generate_sample(tmp_path, per_class=1, size=32)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    with pytest.raises(DataError):  # bad parameters
        generate_sample(tmp_path / "s", per_class=0)


def test_default_location_follows_edge_tl_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_TL_CACHE", str(tmp_path / "cache"))
    assert default_sample_dir() == tmp_path / "cache" / "sample-v1"
