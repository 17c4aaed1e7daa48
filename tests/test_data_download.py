"""The downloader and the download route of `cats-vs-dogs`, exercised with file:// URLs (no network)."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from edge_tl.data import sources
from edge_tl.data.download import cache_dir, download_file, extract_archive
from edge_tl.errors import DataError
from helpers.data import image_folder


def _zip_petimages(tmp: Path) -> Path:
    image_folder(tmp / "src" / "PetImages", {"Cat": 3, "Dog": 3})
    archive = tmp / "kagglecatsanddogs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted((tmp / "src").rglob("*.jpg")):
            zf.write(f, f.relative_to(tmp / "src").as_posix())
        zf.writestr("readme[1].txt", "licence")
    return archive


def test_download_file_and_md5(tmp_path):
    src = tmp_path / "blob.bin"
    src.write_bytes(b"x" * 5000)
    md5 = hashlib.md5(b"x" * 5000).hexdigest()
    dest = download_file(src.as_uri(), tmp_path / "out" / "blob.bin", md5=md5)
    assert dest.read_bytes() == src.read_bytes()
    with pytest.raises(DataError, match="md5"):
        download_file(src.as_uri(), tmp_path / "out" / "other.bin", md5="0" * 32)
    assert not (tmp_path / "out" / "other.bin").exists()  # nothing half-written
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["blob.bin"]
    with pytest.raises(DataError, match="cannot download") as exc:
        download_file((tmp_path / "missing.zip").as_uri(), tmp_path / "x.zip")
    assert "--data-root" in exc.value.hint


def test_extract_archive_atomic(tmp_path):
    archive = _zip_petimages(tmp_path)
    out = extract_archive(archive, tmp_path / "ex")
    assert (out / "PetImages" / "Cat").is_dir()
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not an archive")
    with pytest.raises(DataError, match="cannot extract"):
        extract_archive(bad, tmp_path / "ex2")
    assert not (tmp_path / "ex2").exists()


def test_cats_vs_dogs_download_route(tmp_path, monkeypatch):
    archive = _zip_petimages(tmp_path)
    monkeypatch.setenv("EDGE_TL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(sources, "CATS_DOGS_URL", archive.as_uri())
    ds = sources.resolve_dataset("cats-vs-dogs")
    assert ds.counts() == {"cat": 3, "dog": 3}
    assert ds.root == (cache_dir() / "cats-vs-dogs" / "extracted" / "PetImages").resolve()
    archive.unlink()  # second time: served from the cache, no download
    assert sources.resolve_dataset("cats-vs-dogs").files == ds.files
