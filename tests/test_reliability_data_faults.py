"""Data faults at scale: 2,000 generated images, 10 % of them bad in every way the hygiene scan knows.

The folder has 4 classes of 500 files. 200 files are faulty, 18-20 of each kind: refused ones (zero-byte,
truncated JPEG, text named ``.jpg``, a PNG header claiming 30000x30000 px = a decompression bomb) and
converted ones (PNG named ``.jpg``, CMYK, 16-bit, palette, RGBA, EXIF-rotated), plus exact duplicates.
``edge-tl train`` must complete, report exactly the refused files (no more, no fewer), keep the converted
ones, drop the duplicates from the split, and no DataLoader worker may crash on them (``finetune`` with
``--workers 2``). ``edge-tl data check --json`` must report exactly the injected notes and duplicate groups.

Generation takes about 2 s on a loaded machine: good images reuse 8 encoded JPEGs per class, made unique by
trailing bytes after the JPEG end marker (decoders ignore them; the sha256 differs).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.cli import CliResult, cli_process
from helpers.data import encode, png_raw

pytestmark = pytest.mark.slow

CLASSES = ("a", "b", "c", "d")
PER_CLASS = 500
REFUSED = {"empty": "empty", "truncated": "truncated", "text": "not-image", "bomb": "too-large"}
# converted kinds -> the notes the scan must attach to them
CONVERTED = {"png-as-jpg": ("wrong-extension",), "cmyk": ("cmyk",), "16bit": ("grayscale", "16-bit"),
             "palette": ("palette",), "rgba": ("alpha",), "exif": ("exif-rotated",)}
KINDS = (*REFUSED, *CONVERTED, "duplicate")  # 11 kinds x 18 = 198, +2 duplicates = 200


ROTATED = Image.Exif()
ROTATED[0x0112] = 6  # EXIF orientation: rotate 90 CW
# fault kind -> its bytes, from the image's pixels (and the generator, for an alpha channel)
FAULT_BYTES: dict[str, Callable[[np.ndarray, np.random.Generator], bytes]] = {
    "empty": lambda px, rng: b"",
    "truncated": lambda px, rng: (full := encode(Image.fromarray(px), "JPEG", quality=95))[: len(full) // 2],
    "text": lambda px, rng: b"this is not an image\n" * 3,
    "bomb": lambda px, rng: png_raw(30000, 30000, 8, 2, b"\0" * 16),  # the header claims 9e8 RGB pixels
    "png-as-jpg": lambda px, rng: encode(Image.fromarray(px), "PNG"),
    "cmyk": lambda px, rng: encode(Image.fromarray(px).convert("CMYK"), "JPEG", quality=90),
    "16bit": lambda px, rng: encode(Image.fromarray(px[..., 0].astype(np.uint16) * 257), "PNG"),
    "palette": lambda px, rng: encode(Image.fromarray(px).convert("P", palette=Image.Palette.ADAPTIVE), "PNG"),
    "rgba": lambda px, rng: encode(Image.fromarray(np.concatenate(
        [px, rng.integers(0, 255, (40, 40, 1), dtype=np.uint8)], -1), "RGBA"), "PNG"),
    "exif": lambda px, rng: encode(Image.fromarray(px), "JPEG", quality=90, exif=ROTATED.tobytes()),
}


def make_faulty_folder(root: Path, seed: int = 0) -> dict[str, set[Path]]:
    """Write the 2,000-file folder; return the injected files by kind (``good`` included)."""
    rng = np.random.default_rng(seed)
    injected: dict[str, set[Path]] = defaultdict(set)
    plan = [KINDS[i % len(KINDS)] for i in range(200)]  # 200 faults, round-robin over kinds
    plan[-2:] = ["duplicate", "duplicate"]
    faults_of = {c: plan[k::len(CLASSES)] for k, c in enumerate(CLASSES)}
    for c_idx, c in enumerate(CLASSES):
        d = root / c
        d.mkdir(parents=True)
        tint = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]][c_idx], np.uint8)

        def pixels(size: int = 40, tint: np.ndarray = tint) -> np.ndarray:
            noise = rng.integers(0, 90, (size, size, 3), dtype=np.uint8)
            return (noise + (tint * 0.6).astype(np.uint8)).clip(0, 255).astype(np.uint8)

        bases = [encode(Image.fromarray(pixels()), "JPEG", quality=90) for _ in range(8)]
        faults = faults_of[c]
        n_good = PER_CLASS - len(faults)
        good_paths = [d / f"{c}_{i:04d}.jpg" for i in range(n_good)]
        for i, p in enumerate(good_paths):
            p.write_bytes(bases[i % 8] + f"edge-tl-test-{c}-{i}".encode())
        injected["good"].update(good_paths)
        for j, kind in enumerate(faults):
            p = d / f"{c}_fault_{j:03d}_{kind}.{'png' if kind in ('16bit', 'palette', 'rgba') else 'jpg'}"
            px = pixels()
            p.write_bytes(good_paths[j].read_bytes() if kind == "duplicate" else FAULT_BYTES[kind](px, rng))
            injected[kind].add(p)
    return dict(injected)


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, set[Path]]]:
    root = tmp_path_factory.mktemp("faults") / "data"
    return root, make_faulty_folder(root)


def test_folder_is_as_specified(faulty: tuple[Path, dict[str, set[Path]]]) -> None:
    root, inj = faulty
    files = [p for p in root.rglob("*") if p.is_file()]
    assert len(files) == 2000
    assert sum(len(v) for k, v in inj.items() if k != "good") == 200
    assert all(len(inj[k]) >= 18 for k in KINDS)


def _cli(args: list[str], cwd: Path, rc: int = 0) -> CliResult:
    res = cli_process(args, cwd)
    assert res.code == rc, res.err[-3000:]
    assert "Traceback" not in res.err, res.err[-3000:]
    return res


def _refused(inj: dict[str, set[Path]]) -> dict[Path, str]:
    return {p.resolve(): REFUSED[k] for k in REFUSED for p in inj[k]}


def test_data_check_reports_every_fault(faulty: tuple[Path, dict[str, set[Path]]], tmp_path: Path) -> None:
    root, inj = faulty
    _cli(["data", "check", str(root), "--json", str(tmp_path / "check.json")], tmp_path, rc=1)  # 1: bad files
    rep = json.loads((tmp_path / "check.json").read_text())
    got_bad = {Path(b["path"]).resolve(): b["kind"] for b in rep["bad_files"]}
    assert got_bad == _refused(inj)
    for note in {n for ns in CONVERTED.values() for n in ns}:
        want = {p.resolve() for k, ns in CONVERTED.items() if note in ns for p in inj[k]}
        got = {Path(p).resolve() for p in rep["notes"].get(note, [])}
        assert got == want, note
    dup_groups = [{Path(p).resolve() for p in g["paths"]} for g in rep["duplicates"]]
    dup_copies = {p.resolve() for p in inj["duplicate"]}
    assert len(dup_groups) == len(dup_copies)
    assert all(len(g) == 2 and len(g & dup_copies) == 1 for g in dup_groups)


@pytest.mark.parametrize("mode_args", [
    ["--mode", "features"],
    ["--mode", "finetune", "--workers", "2", "--batch-size", "64", "--unfreeze", "1"],
], ids=["features", "finetune-2-workers"])
def test_train_completes_and_reports_every_bad_file(faulty: tuple[Path, dict[str, set[Path]]], tmp_path: Path,
                                                    mode_args: list[str]) -> None:
    from edge_tl.data.manifest import Manifest

    root, inj = faulty
    out = tmp_path / "run"
    res = _cli(["train", "--data", str(root), "--backbone", "tiny_cnn", "--weights", "none", "--img-size", "32",
                "--epochs", "1", "--seed", "0", "--quiet", *mode_args, "--out", str(out),
                "--json", str(tmp_path / "train.json")], tmp_path)
    result = json.loads((tmp_path / "train.json").read_text())
    got = {Path(b["path"]).resolve(): b["kind"] for b in result["bad_files"]}
    assert got == _refused(inj)
    assert f"skipping {len(got)} bad file(s)" in res.err
    m = Manifest.load(out / "split.json")
    used = {p.resolve() for p in m.files()}
    assert not used & set(_refused(inj)), "a refused file made it into the split"
    converted = {p.resolve() for k in CONVERTED for p in inj[k]}
    assert converted <= used, "a convertible file was dropped"
    assert m.dropped_duplicates == len(inj["duplicate"])
    assert len(used) == 2000 - len(got) - len(inj["duplicate"])
    assert result["metrics"]["test_accuracy"] is not None and result["metrics"]["epochs_run"] == 1
