"""The hygiene scan: every bad-file kind, every conversion, duplicates and leakage, on generated files."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_tl.data.hygiene import build_report, check_file, scan
from edge_tl.data.preprocess import BadImageError, load_pixels, open_image
from helpers.cards import SPEC
from helpers.data import encode, messy_files, noise, write_files


@pytest.fixture()
def messy(tmp_path: Path) -> dict[str, Path]:
    return {p.name: p for p in write_files(tmp_path / "a", messy_files())}


@pytest.mark.parametrize("name,kind", [
    ("empty.jpg", "empty"), ("truncated.jpg", "truncated"), ("truncated_tail.jpg", "truncated"),
    ("text.jpg", "not-image"), ("page.png", "not-image"), ("bomb.png", "too-large"),
])
def test_bad_files_are_refused_with_a_reason(messy, name, kind):
    res = check_file(messy[name], label=3)
    assert res.bad is not None and res.bad.kind == kind and res.bad.label == 3
    assert res.bad.reason
    assert name != "page.png" or "HTML" in res.bad.reason  # an HTML page is named
    with pytest.raises(BadImageError):  # training's decoder refuses them too (never silently accepted)
        open_image(messy[name])
    with pytest.raises(BadImageError):  # also in draft mode, as load_pixels decodes
        load_pixels(messy[name], SPEC)


def test_missing_file_is_unreadable(tmp_path):
    res = check_file(tmp_path / "gone.jpg")
    assert res.bad is not None and res.bad.kind == "unreadable"


@pytest.mark.parametrize("name,notes", [
    ("good.jpg", set()), ("png_named.jpg", {"wrong-extension"}), ("gif_named.jpg", {"wrong-extension", "palette"}),
    ("webp_named.jpg", {"wrong-extension"}), ("cmyk.jpg", {"cmyk"}), ("gray.jpg", {"grayscale"}),
    ("rgba.png", {"alpha"}), ("palette.png", {"palette"}), ("palette_transparent.png", {"palette", "alpha"}),
    ("gray16.png", {"grayscale", "16-bit"}), ("rgb16.png", {"16-bit"}), ("rotated.jpg", {"exif-rotated"}),
])
def test_usable_files_and_their_conversions(messy, name, notes):
    res = check_file(messy[name])
    assert res.bad is None and res.sha256 and len(res.sha256) == 64
    assert set(res.notes) == notes
    im = open_image(messy[name])
    assert im.mode == "RGB"


def test_exif_orientation_is_applied(messy):
    assert check_file(messy["rotated.jpg"]).size == (40, 20)
    assert open_image(messy["rotated.jpg"]).size == (20, 40)


def test_sixteen_bit_is_scaled_not_clipped(messy):
    px = np.asarray(open_image(messy["gray16.png"]))
    assert abs(int(px[0, 0, 0]) - round(40000 / 65535 * 255)) <= 1


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_pixel_limit_is_pillows(messy, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 40x32 = 1280 pixels: over the limit
    res = check_file(messy["good.jpg"])
    assert res.bad is not None and res.bad.kind == "too-large" and "1000" in res.bad.reason


def test_scan_report_counts_everything(messy):
    files = sorted(messy.values())
    report = scan(files, [0] * len(files), progress=False, threads=2)
    assert report.total == len(files)
    bad = report.bad_counts()
    assert bad == {"unreadable": 0, "empty": 1, "not-image": 2, "truncated": 2, "corrupt": 0, "too-large": 1}
    assert len(report.records) == len(files) - 6
    notes = report.note_counts()
    assert notes["wrong-extension"] == 3 and notes["cmyk"] == 1 and notes["exif-rotated"] == 1
    assert notes["16-bit"] == 2 and notes["alpha"] == 2
    (dup,) = report.duplicates
    assert {p.name for p in dup.paths} == {"good.jpg", "copy_of_good.jpg"} and not dup.label_conflict
    assert not report.leakage and not report.ok  # bad files present
    js = report.to_json()
    assert js["bad"] == 6 and len(js["bad_files"]) == 6 and js["duplicates"][0]["sha256"] == dup.sha256
    # records keep the input order and carry the right labels/hashes
    assert [r.path for r in report.records] == [f for f in files if f in {r.path for r in report.records}]


def test_scan_is_the_same_with_one_or_two_threads(messy):
    files = sorted(messy.values())
    a = scan(files, list(range(len(files))), progress=False, threads=1)
    b = scan(files, list(range(len(files))), progress=False, threads=2)
    assert a.records == b.records and a.bad == b.bad and a.notes == b.notes


def test_duplicates_under_two_classes_and_leakage(tmp_path):
    good = encode(noise(seed=1), "JPEG")
    files = write_files(tmp_path / "cat", {"a.jpg": good, "b.jpg": encode(noise(seed=2), "JPEG")})
    files += write_files(tmp_path / "dog", {"a_again.jpg": good, "c.jpg": encode(noise(seed=3), "JPEG")})
    report = scan(files, [0, 0, 1, 1], ["train", "train", "test", "test"], progress=False)
    (dup,) = report.duplicates
    assert dup.label_conflict and dup.splits == ("train", "test")
    (leak,) = report.leakage
    assert {p.name for p in leak.paths} == {"a.jpg", "a_again.jpg"}
    assert not report.ok and report.to_json()["leakage"][0]["splits"] == ["train", "test"]


def test_no_leakage_when_copies_share_a_split(tmp_path):
    good = encode(noise(seed=1), "JPEG")
    files = write_files(tmp_path, {"a.jpg": good, "b.jpg": good})
    report = scan(files, [0, 0], ["val", "val"], progress=False)
    assert len(report.duplicates) == 1 and not report.leakage and report.ok


def test_unexpected_decoder_errors_never_escape(tmp_path, monkeypatch):
    import edge_tl.data.preprocess as pp

    def explode(path, min_side=None):
        raise struct.error("unpack requires a buffer of 4 bytes")

    monkeypatch.setattr(pp, "open_image", explode)
    (f,) = write_files(tmp_path, {"x.jpg": encode(noise(), "JPEG")})
    res = check_file(f)
    assert res.bad is not None and res.bad.kind == "corrupt" and "unpack" in res.bad.reason


def test_build_report_on_nothing():
    report = build_report([])
    assert report.total == 0 and report.ok and report.to_json()["good"] == 0


def test_only_bad_files_are_listed_not_crashing(messy):
    """Nothing but bad files still yields a report (nothing usable, nothing raised)."""
    report = scan([messy[n] for n in ("empty.jpg", "text.jpg", "bomb.png")], [0, 1, 0], progress=False)
    assert not report.records and len(report.bad) == 3
