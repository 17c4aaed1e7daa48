"""Bad input to ``edge-tl train`` / ``edge-tl eval``: one line on stderr, exit status 2, nothing half-written
(the cases that need no real dataset or trained run are rows of ``test_reliability_bad_input``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from edge_tl.errors import DeviceError
from edge_tl.train.device import oom_guard
from helpers.cli import cli

TINY = ["--backbone", "tiny_cnn", "--weights", "none", "--img-size", "32", "--epochs", "1", "--quiet",
        "--engine", "torch"]


def _fail(capsys: pytest.CaptureFixture[str], args: list[str]) -> str:
    """The one-line error of ``edge-tl ARGS``, checked to exit 2 with no traceback."""
    code, _, err = cli(args, capsys)
    last = err.strip().splitlines()[-1] if err.strip() else ""
    assert code == 2 and last.startswith("error: ") and "Traceback" not in err, err
    return last


def _images(folder: Path, n: int, src: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in src.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    assert len(files) >= n
    for i, f in enumerate(files[:n]):
        shutil.copy(f, folder / f"{i}{f.suffix}")


def _classes(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir())


def _broken(folder: Path, n: int) -> None:
    folder.mkdir(parents=True)
    for i in range(n):
        (folder / f"{i}.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")


@pytest.mark.parametrize("setup,words", [
    (lambda d, s: [(d / "a").mkdir(parents=True), (d / "b").mkdir()], ["no images"]),  # empty classes
    (lambda d, s: [_images(d / "big", 8, _classes(s)[0]), _images(d / "tiny", 2, _classes(s)[1])],
     ["too small to split", "'tiny'"]),
    (lambda d, s: [_images(d / "good", 6, s), _broken(d / "bad", 4)], ["too small to split", "'bad'"]),
])
def test_unusable_dataset(capsys, tmp_path: Path, sample_dir: Path, setup, words) -> None:
    setup(tmp_path / "data", sample_dir)
    msg = _fail(capsys, ["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), *TINY])
    assert all(w in msg for w in words), msg
    assert not (tmp_path / "run" / "model.pt").exists()


@pytest.mark.parametrize("args,words", [
    (["--backbone", "mobilenetv2"], ["unknown backbone 'mobilenetv2'", "did you mean 'mobilenet_v2'", "resnet18"]),
    pytest.param(["--device", "cuda", *TINY], ["no CUDA GPU", "--device cpu"],
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")),
    *(([*mode, "--unfreeze", "1", *TINY], ["--unfreeze applies to --mode finetune only", "add --mode finetune"])
      for mode in ([], ["--mode", "features"], ["--mode", "full"])),
    (["--split", "official", *TINY], ["has no official split"]),
])
def test_bad_train_options(capsys, tmp_path: Path, sample_dir: Path, args, words) -> None:
    msg = _fail(capsys, ["train", "--data", str(sample_dir), *args, "--out", str(tmp_path / "run")])
    assert all(w in msg for w in words), msg
    assert not (tmp_path / "run").exists()


def test_out_of_memory_suggests_smaller_batch() -> None:
    with pytest.raises(DeviceError, match="out of GPU memory") as exc, oom_guard(64):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    assert "--batch-size" in exc.value.hint and "32" in exc.value.hint


def test_resume_with_other_backbone_or_classes(capsys, tmp_path: Path, tiny_run: Path, sample_dir: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = (run / "train_state.pt").read_bytes()
    msg = _fail(capsys, ["train", "--out", str(run), "--resume", "--backbone", "tiny_mobilenet"])
    assert "trained with backbone 'tiny_cnn'" in msg
    other = tmp_path / "other"
    shutil.copytree(sample_dir, other)
    _classes(other)[0].rename(other / "renamed_class")
    msg = _fail(capsys, ["train", "--out", str(run), "--resume", "--data", str(other)])
    assert "cannot resume" in msg and "classes" in msg
    assert (run / "train_state.pt").read_bytes() == before
