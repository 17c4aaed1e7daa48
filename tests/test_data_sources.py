"""Dataset sources: ImageFolder folders (plain and pre-split), `sample`, Oxford-IIIT Pet and PetImages layouts
(generated on disk, never downloaded), and the error for every unusable input."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_tl.data.sources import list_sources, load_folder, resolve_dataset
from edge_tl.errors import DataError, UnknownNameError
from helpers.data import image_folder, jpeg


def test_source_registry():
    from edge_tl.data.sources import get_source

    assert {"folder", "sample", "oxford-pets", "cats-vs-dogs"} <= set(list_sources())
    with pytest.raises(UnknownNameError):
        get_source("imagenet")


def test_image_folder(tmp_path):
    root = image_folder(tmp_path / "d", {"dog": 2, "cat": 3})
    (root / "cat" / "Thumbs.db").write_bytes(b"x")  # not an image extension: ignored
    (root / "cat" / ".hidden.jpg").write_bytes(b"x")  # hidden: ignored
    (root / ".git").mkdir()  # hidden folder: not a class
    jpeg(root / "dog" / "nested" / "deep.JPG", 99)  # nested + upper-case extension: included
    ds = resolve_dataset(str(root))
    assert ds.classes == ["cat", "dog"] and ds.name == "d" and ds.root == root.resolve()
    assert ds.counts() == {"cat": 3, "dog": 3}
    assert all(ds.classes[lab] == f.relative_to(root).parts[0] for f, lab in zip(ds.files, ds.labels))
    assert ds.splits is None
    assert resolve_dataset("folder", root).files == ds.files


def test_presplit_folder(tmp_path):
    root = tmp_path / "d"
    image_folder(root / "train", {"cat": 3, "dog": 3})
    image_folder(root / "valid", {"cat": 1, "dog": 1})
    image_folder(root / "test", {"cat": 1, "dog": 2})
    ds = load_folder(root)
    assert ds.classes == ["cat", "dog"] and len(ds) == 11
    assert ds.splits is not None and sorted(set(ds.splits)) == ["test", "train", "val"]
    assert ds.splits.count("val") == 2 and ds.splits.count("test") == 3


def test_sample_source_is_cached():
    """Uses the session cache (conftest points EDGE_TL_CACHE at a temp folder): generated once per session."""
    from edge_tl.data.sample import default_sample_dir

    ds = resolve_dataset("sample")
    assert ds.name == "sample" and len(ds.classes) == 6 and len(ds) == 6 * 100
    assert ds.root == default_sample_dir().resolve()
    assert resolve_dataset("sample").files == ds.files  # reused, not regenerated
    assert resolve_dataset("sample", default_sample_dir()).files == ds.files  # --data-root


def _oxford_pets(root: Path) -> Path:
    base = root / "oxford-iiit-pet"
    breeds = [("Abyssinian", 1, 1), ("american_bulldog", 2, 2), ("Bengal", 3, 1)]
    lines = {"trainval": [], "test": []}
    seed = 0
    for name, cid, species in breeds:
        for i in range(1, 5):
            seed += 1
            jpeg(base / "images" / f"{name}_{i}.jpg", seed)
            lines["trainval" if i <= 3 else "test"].append(f"{name}_{i} {cid} {species} {i}")
    jpeg(base / "images" / "unlisted_1.jpg", 0)  # not in the annotations: not part of the dataset
    (base / "annotations").mkdir(parents=True)
    for split, ls in lines.items():
        (base / "annotations" / f"{split}.txt").write_text("\n".join(ls) + "\n")
    return base


def test_oxford_pets_extracted_copy(tmp_path):
    base = _oxford_pets(tmp_path)
    for root in (tmp_path, base):  # the folder holding oxford-iiit-pet/, or that folder itself
        ds = resolve_dataset("oxford-pets", root)
        assert ds.name == "oxford-pets" and ds.classes == ["Abyssinian", "American Bulldog", "Bengal"]
        assert len(ds) == 12 and ds.labels.count(1) == 4
        assert all(f.name.startswith(("Abyssinian", "american_bulldog", "Bengal")) for f in ds.files)
        assert all(ds.classes[lab].split()[0].lower() == f.name.split("_")[0].lower()
                   for f, lab in zip(ds.files, ds.labels))


def test_oxford_pets_official_split(tmp_path):
    """--split official keeps the trainval/test lists (val is carved from trainval by train); the default
    policy does not impose them."""
    from edge_tl.data.sources import with_split

    ds = resolve_dataset("oxford-pets", _oxford_pets(tmp_path))
    assert ds.splits is None and ds.official is not None
    off = with_split(ds, "official")
    split_of = {f.stem: sp for f, sp in zip(off.files, off.splits)}
    assert {k for k, v in split_of.items() if v == "test"} == {f"{n}_4" for n in ("Abyssinian", "american_bulldog",
                                                                                   "Bengal")}
    assert sum(v == "train" for v in split_of.values()) == 9
    assert with_split(ds, "auto") == ds and with_split(off, "stratified").splits is None


def test_official_split_needs_a_dataset_that_has_one(tmp_path):
    from edge_tl.data.sources import with_split

    plain = load_folder(image_folder(tmp_path / "d", {"cat": 3, "dog": 3}))
    with pytest.raises(DataError, match="has no official split") as exc:
        with_split(plain, "official")
    assert "--split auto" in exc.value.hint
    root = tmp_path / "pre"
    image_folder(root / "train", {"cat": 3, "dog": 3})
    image_folder(root / "test", {"cat": 1, "dog": 1}, seed=50)
    pre = load_folder(root)
    assert with_split(pre, "official").splits == pre.splits  # a pre-split folder's own split is its official one
    with pytest.raises(UnknownNameError):
        with_split(plain, "random")


def test_cats_vs_dogs_petimages_layout(tmp_path):
    pet = tmp_path / "PetImages"
    image_folder(pet, {"Cat": 3, "Dog": 2})
    (pet / "Cat" / "Thumbs.db").write_bytes(b"\x00" * 10)
    (pet / "Dog" / "666.jpg").write_bytes(b"")  # the real set has such files: listed here, refused by the scan
    for root in (tmp_path, pet):
        ds = resolve_dataset("cats-vs-dogs", root)
        assert ds.classes == ["cat", "dog"] and ds.counts() == {"cat": 3, "dog": 3}


@pytest.mark.parametrize("setup,match", [
    (lambda p: None, "does not exist"),
    (lambda p: p.write_text("x"), "is a file"),
    (lambda p: p.mkdir(), "is empty"),
    (lambda p: image_folder(p, {"cat": 3}), "single class"),
    (lambda p: [jpeg(p / "a.jpg"), jpeg(p / "b.jpg")], "no class subfolders"),
    (lambda p: [image_folder(p, {"cat": 2}), (p / "dog").mkdir()], "without images.*dog"),
    (lambda p: [(p / "a").mkdir(parents=True), (p / "b").mkdir(), (p / "a" / "x.txt").write_text("x")],
     "holds no images"),
])
def test_folder_errors(tmp_path, setup, match):
    p = tmp_path / "data"
    setup(p)
    with pytest.raises(DataError, match=match) as exc:
        resolve_dataset(str(p))
    assert exc.value.hint


@pytest.mark.parametrize("name,with_root,match", [("cats-vs-dogs", True, "PetImages"),
                                                  ("folder", False, "--data-root")])
def test_named_source_without_its_folder(tmp_path, name, with_root, match):
    with pytest.raises(DataError, match=match):
        resolve_dataset(name, tmp_path if with_root else None)


@pytest.mark.parametrize("spec,match,hint", [
    ("oxford-pet", "not an existing folder", "did you mean 'oxford-pets'"),  # a source name
    ("./photoz", "does not exist", "did you mean './photos'"),  # a sibling folder
    ("photo", "not an existing folder", "did you mean 'photos'"),
])
def test_unknown_name_suggests(tmp_path, monkeypatch, spec, match, hint):
    image_folder(tmp_path / "photos", {"a": 1, "b": 1})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=match) as exc:
        resolve_dataset(spec)
    assert hint in exc.value.hint


def test_oxford_pets_download_route_is_atomic(tmp_path, monkeypatch):
    """Without --data-root: torchvision's downloader runs in a temp folder, the result moves into the cache."""
    from edge_tl.data import sources

    calls = []

    def fake_loader(root, split, download):  # stands in for OxfordIIITPet(download=True): writes the layout
        calls.append(root)
        _oxford_pets(Path(root))

    monkeypatch.setenv("EDGE_TL_CACHE", str(tmp_path / "cache"))
    base = sources._pets_download(fake_loader)
    assert base == tmp_path / "cache" / "oxford-pets" and (base / "oxford-iiit-pet" / ".complete").is_file()
    assert [p.name for p in base.iterdir()] == ["oxford-iiit-pet"]  # no temp folder left
    assert sources._pets_download(fake_loader) == base and len(calls) == 1  # cached

    def offline(root, split, download):
        raise OSError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setenv("EDGE_TL_CACHE", str(tmp_path / "cache2"))
    with pytest.raises(DataError, match="Name or service") as exc:
        sources._pets_download(offline)
    assert "--data-root" in exc.value.hint
    assert list((tmp_path / "cache2" / "oxford-pets").iterdir()) == []
