"""Bad input to ``edge-tl train`` / ``edge-tl eval``: one line on stderr, exit status 2, nothing half-written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from edge_tl.cli.main import main
from edge_tl.errors import DeviceError
from edge_tl.train.device import oom_guard

TINY = ["--backbone", "tiny_cnn", "--weights", "none", "--img-size", "32", "--epochs", "1", "--quiet",
        "--engine", "torch"]


def _fail(capsys: pytest.CaptureFixture[str], args: list[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        main(args)
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2, err
    last = err.splitlines()[-1]
    assert last.startswith("error: ") and "Traceback" not in err, err
    return last


def _images(folder: Path, n: int, src: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in src.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    assert len(files) >= n
    for i, f in enumerate(files[:n]):
        shutil.copy(f, folder / f"{i}{f.suffix}")


def _classes(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir())


def test_empty_dataset(capsys, tmp_path: Path) -> None:
    (tmp_path / "data" / "a").mkdir(parents=True)
    (tmp_path / "data" / "b").mkdir(parents=True)
    msg = _fail(capsys, ["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), *TINY])
    assert "no images" in msg
    assert not (tmp_path / "run" / "model.pt").exists()


def test_single_class(capsys, tmp_path: Path, sample_dir: Path) -> None:
    _images(tmp_path / "data" / "only", 5, sample_dir)
    msg = _fail(capsys, ["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), *TINY])
    assert "single class" in msg


def test_class_too_small_to_split(capsys, tmp_path: Path, sample_dir: Path) -> None:
    _images(tmp_path / "data" / "big", 8, _classes(sample_dir)[0])
    _images(tmp_path / "data" / "tiny", 2, _classes(sample_dir)[1])
    msg = _fail(capsys, ["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), *TINY])
    assert "too small to split" in msg and "'tiny'" in msg


def test_class_of_only_broken_files(capsys, tmp_path: Path, sample_dir: Path) -> None:
    _images(tmp_path / "data" / "good", 6, sample_dir)
    (tmp_path / "data" / "bad").mkdir()
    for i in range(4):
        (tmp_path / "data" / "bad" / f"{i}.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    msg = _fail(capsys, ["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), *TINY])
    assert "too small to split" in msg and "'bad'" in msg


def test_unknown_backbone_suggests(capsys, tmp_path: Path, sample_dir: Path) -> None:
    msg = _fail(capsys, ["train", "--data", str(sample_dir), "--backbone", "mobilenetv2", "--out",
                         str(tmp_path / "run")])
    assert "unknown backbone 'mobilenetv2'" in msg and "did you mean 'mobilenet_v2'" in msg
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_gpu_asked_for_but_absent(capsys, tmp_path: Path, sample_dir: Path) -> None:
    msg = _fail(capsys, ["train", "--data", str(sample_dir), "--device", "cuda", "--out", str(tmp_path / "r"), *TINY])
    assert "no CUDA GPU" in msg and "--device cpu" in msg


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


def test_resume_without_state_and_existing_run(capsys, tmp_path: Path, tiny_run: Path, sample_dir: Path) -> None:
    msg = _fail(capsys, ["train", "--out", str(tmp_path / "nothing"), "--resume"])
    assert "nothing to resume" in msg
    msg = _fail(capsys, ["train", "--data", str(sample_dir), "--out", str(tiny_run), *TINY])
    assert "already holds a trained run" in msg and "--force" in msg


def test_eval_bad_inputs(capsys, tmp_path: Path, tiny_run: Path, sample_dir: Path) -> None:
    msg = _fail(capsys, ["eval", "--model", str(tmp_path / "missing")])
    assert "does not exist" in msg
    (tmp_path / "junk.pt").write_bytes(b"junk")
    msg = _fail(capsys, ["eval", "--model", str(tmp_path / "junk.pt")])
    assert "not a readable edge-tl checkpoint" in msg
    other = tmp_path / "other"
    shutil.copytree(sample_dir, other)
    _classes(other)[0].rename(other / "zebra")
    msg = _fail(capsys, ["eval", "--model", str(tiny_run), "--data", str(other), "--quiet"])
    assert "do not match" in msg and "zebra" in msg


def test_bad_numbers_are_usage_errors(capsys, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", "--epochs", "0", "--out", str(tmp_path / "r")])
    assert exc.value.code == 2


def test_unfreeze_without_finetune_and_official_split_without_one(capsys, tmp_path: Path, sample_dir: Path) -> None:
    msg = _fail(capsys, ["train", "--data", str(sample_dir), "--unfreeze", "1", "--out", str(tmp_path / "r"), *TINY])
    assert "--unfreeze applies to --mode finetune only" in msg and "add --mode finetune" in msg
    msg = _fail(capsys, ["train", "--data", str(sample_dir), "--split", "official", "--out", str(tmp_path / "r"),
                         *TINY])
    assert "has no official split" in msg
    assert not (tmp_path / "r").exists()
