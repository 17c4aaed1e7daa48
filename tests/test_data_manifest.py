"""Split manifests: stratified, seeded, order-independent, leak-free, round-tripping, with clear errors."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_tl.data.manifest import Manifest, Record, make_split, manifest_for_card, split_dataset, split_sizes
from edge_tl.data.sources import load_folder
from edge_tl.errors import DataError
from helpers.cards import card
from helpers.data import image_folder


def records(counts: list[int]) -> list[Record]:
    """``counts[label]`` records per label, each with its own hash."""
    pairs = [(label, i) for label, n in enumerate(counts) for i in range(n)]
    return [Record(Path(f"/d/c{label}/{i}.jpg"), f"{k:064x}", label) for k, (label, i) in enumerate(pairs)]


CLASSES = ["a", "b", "c"]


@pytest.mark.parametrize("counts,seed,fracs,expected", [
    ([40, 20, 10], 0, (0.2, 0.1), {"train": [28, 14, 7], "val": [8, 4, 2], "test": [4, 2, 1]}),
    ([3, 3, 3], 1, (0.15, 0.15), {"train": [1, 1, 1], "val": [1, 1, 1], "test": [1, 1, 1]}),  # small: one each
    ([2, 2, 2], 0, (0.0, 0.3), {"train": [1, 1, 1], "val": [0, 0, 0], "test": [1, 1, 1]}),  # no val: 2 suffice
])
def test_stratified_counts(counts, seed, fracs, expected):
    m = make_split(records(counts), CLASSES, seed=seed, val_frac=fracs[0], test_frac=fracs[1])
    assert m.counts() == expected
    assert len(m.items) == sum(counts) == len({it.path for it in m.items})


def test_reproducible_and_seed_dependent():
    recs = records([30, 30, 30])
    a = make_split(recs, CLASSES, seed=7)
    assert make_split(list(reversed(recs)), CLASSES, seed=7) == a  # listing order does not matter
    b = make_split(recs, CLASSES, seed=8)
    assert a.files("test") != b.files("test") and a.counts() == b.counts()


def test_split_follows_content_not_names():
    recs = records([20, 20, 20])
    renamed = [Record(Path(f"/elsewhere/{random.Random(i).random()}.jpg"), r.sha256, r.label)
               for i, r in enumerate(recs)]
    a, b = make_split(recs, CLASSES, seed=0), make_split(renamed, CLASSES, seed=0)
    assert {it.sha256: it.split for it in a.items} == {it.sha256: it.split for it in b.items}


def test_duplicates_kept_once_so_no_leakage():
    recs = records([10, 10, 10])
    copies = [Record(Path(str(r.path) + ".copy.jpg"), r.sha256, r.label) for r in recs[:5]]
    m = make_split(recs + copies, CLASSES, seed=0)
    assert m.dropped_duplicates == 5 and len(m.items) == 30
    by_hash: dict[str, set[str]] = {}
    for it in m.items:
        by_hash.setdefault(it.sha256, set()).add(it.split)
    assert all(len(s) == 1 for s in by_hash.values())


@pytest.mark.parametrize("counts,fracs,match,hint", [
    ([5, 2, 5], (0.15, 0.15), r"'b' has 2 usable image\(s\), at least 3 needed", "add images"),  # names the class
    ([10], (0.15, 0.15), "at least 2 classes", None),
    *(([10, 10, 10], fracs, "fractions", None) for fracs in [(-0.1, 0.2), (0.5, 0.5), (1.0, 0.0)]),
])
def test_unsplittable_input_is_refused(counts, fracs, match, hint):
    with pytest.raises(DataError, match=match) as exc:
        make_split(records(counts), CLASSES[:len(counts)], seed=0, val_frac=fracs[0], test_frac=fracs[1])
    assert hint is None or hint in exc.value.hint


def test_split_sizes():
    assert split_sizes(100, 0.15, 0.15) == (70, 15, 15)
    assert split_sizes(3, 0.15, 0.15) == (1, 1, 1)
    assert split_sizes(4, 0.45, 0.45) == (1, 1, 2)  # train never empty
    assert split_sizes(3, 0.0, 0.5) == (1, 0, 2)


def test_round_trip_and_relative_paths(tmp_path):
    root = tmp_path / "data"
    recs = [Record(root / f"c{r.label}" / r.path.name, r.sha256, r.label) for r in records([5, 5, 5])]
    m = make_split(recs, CLASSES, seed=3, dataset="mine", root=root)
    assert all(not Path(it.path).is_absolute() for it in m.items)
    path = m.save(tmp_path / "run" / "split.json")
    loaded = Manifest.load(path)
    assert loaded == m
    assert loaded.files("val") == [root.resolve() / it.path for it in m.select("val")]
    assert loaded.labels("val") == [it.label for it in m.select("val")]
    assert len(loaded.files()) == 15
    assert json.loads(path.read_text())["format"] == "edge-tl-manifest"
    with pytest.raises(DataError, match="unknown split"):
        loaded.files("validation")


@pytest.mark.parametrize("content,match", [
    (None, "not found"),  # no file at all
    ("{not json", "cannot read"),
    ('{"format": "something-else"}', "not an edge-tl split manifest"),
    ('{"format": "edge-tl-manifest", "classes": ["a"], "items": [{"path": "x"}]}', "malformed"),
    ('{"format": "edge-tl-manifest", "classes": ["a"], "items": [{"path": "x", "sha256": "0", "label": 4, '
     + '"split": "train"}]}', "malformed"),
    ('{"format": "edge-tl-manifest", "version": 99, "classes": ["a"], "items": []}', "newer"),
])
def test_bad_manifest_files(tmp_path, content, match):
    p = tmp_path / "split.json"
    if content is not None:
        p.write_text(content)
    with pytest.raises(DataError, match=match):
        Manifest.load(p)


def test_manifest_for_card(tmp_path):
    m = make_split(records([5, 5, 5]), CLASSES, seed=0)
    run = tmp_path / "runs" / "r1"
    m.save(run / "split.json")
    assert manifest_for_card(card("pytorch", tuple(CLASSES), manifest="split.json", run_dir=str(run))) == m
    # without run_dir the card's own folder is used
    assert manifest_for_card(card("pytorch", tuple(CLASSES), manifest="split.json"), card_path=run / "card.json") == m
    shutil.rmtree(run)
    with pytest.raises(DataError, match="not found") as exc:
        manifest_for_card(card("pytorch", tuple(CLASSES), manifest="split.json", run_dir=str(run)))
    assert "--data" in exc.value.hint
    with pytest.raises(DataError, match="names no split manifest"):
        manifest_for_card(card("pytorch", tuple(CLASSES)))


def test_verify_finds_missing_and_changed_files(tmp_path):
    from edge_tl._io import sha256_file

    root = image_folder(tmp_path / "d", {"a": 3, "b": 3})
    ds = load_folder(root)
    m = make_split([Record(f, sha256_file(f), lab) for f, lab in zip(ds.files, ds.labels)], ds.classes, root=root)
    m.verify(hashes=True)
    victim = m.files("test")[0]
    victim.write_bytes(b"changed")
    with pytest.raises(DataError, match="changed"):
        m.verify("test", hashes=True)
    victim.unlink()
    with pytest.raises(DataError, match="gone"):
        m.verify("test")


def test_split_dataset_skips_bad_files(tmp_path):
    root = image_folder(tmp_path / "d", {"a": 4, "b": 4})
    (root / "a" / "broken.jpg").write_bytes(b"")
    (root / "b" / "notes.png").write_bytes(b"hello")
    m, report = split_dataset(load_folder(root), seed=0, progress=False)
    assert len(report.bad) == 2 and len(m.items) == 8
    assert not any("broken" in it.path or "notes" in it.path for it in m.items)
    assert m.root == str(root.resolve()) and m.dataset == "d"


def test_split_dataset_keeps_a_predefined_split_unless_it_leaks(tmp_path):
    image_folder(tmp_path / "d" / "train", {"a": 3, "b": 3})
    image_folder(tmp_path / "d" / "test", {"a": 1, "b": 1}, seed=100)
    m, _ = split_dataset(load_folder(tmp_path / "d"), progress=False)
    assert m.counts() == {"train": [3, 3], "val": [0, 0], "test": [1, 1]}
    assert m.extra == {"predefined_split": True}
    image_folder(tmp_path / "d" / "test", {"a": 1, "b": 1})  # same seeds -> same bytes as train/a/0.jpg
    with pytest.raises(DataError, match="two splits"):
        split_dataset(load_folder(tmp_path / "d"), progress=False)


@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(3, 40), min_size=2, max_size=6), seed=st.integers(0, 10**6),
       val=st.sampled_from([0.0, 0.1, 0.15, 0.3, 0.45]), test=st.sampled_from([0.05, 0.15, 0.3, 0.45]))
def test_split_invariants(counts, seed, val, test):
    recs = records(counts)
    m = make_split(recs, [f"c{i}" for i in range(len(counts))], seed=seed, val_frac=val, test_frac=test)
    assert sorted(it.sha256 for it in m.items) == sorted(r.sha256 for r in recs)  # a partition
    c = m.counts()
    for label, n in enumerate(counts):
        assert c["train"][label] + c["val"][label] + c["test"][label] == n
        assert c["train"][label] >= 1 and c["test"][label] >= 1 and (c["val"][label] >= 1) == (val > 0)
        assert abs(c["test"][label] - n * test) <= max(1.5, n * (val + test) - n + 2)
