"""Write faults: a full disk, a file-size limit, a read-only folder, and outputs that would replace an input.

Every write goes through ``edge_tl._io.atomic_path``: an ``OSError`` (ENOSPC, EFBIG, EDQUOT, EROFS, EACCES) or
torch's checkpoint-writer ``RuntimeError`` becomes one :class:`~edge_tl.errors.WriteError` naming the file and
the cause, the temp file is removed, and the old file (if any) is left as it was. The CLI table at the end runs
each writing command as a real subprocess under ``ulimit -f`` (the kernel's file-size limit, so writes fail
with EFBIG exactly as on a disk that cannot grow) and checks: exit 2, one ``error:`` line, no traceback, no
hidden temp file, and every file left at a final path loads with edge-tl's own reader.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge_tl._io import (
    OUTPUT_KINDS,
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    check_output_file,
    protected_inputs,
    write_error,
)
from edge_tl.errors import EdgeTLError, OutputConflictError, WriteError
from helpers.cli import cli, cli_process
from helpers.reliability import ASSETS, check_final_files, files, image, listing, loads

# ---------------------------------------------------------------- the central translation, in-process

FAULTS = [(errno.ENOSPC, "no space left"), (errno.EFBIG, "file too large"), (errno.EDQUOT, "quota"),
          (errno.EROFS, "read-only"), (errno.EACCES, "permission denied")]


@pytest.mark.parametrize(("code", "words"), FAULTS, ids=[errno.errorcode[c] for c, _ in FAULTS])
def test_atomic_path_turns_os_errors_into_one_write_error(tmp_path: Path, code: int, words: str) -> None:
    final = tmp_path / "out" / "result.json"
    final.parent.mkdir()
    final.write_text('{"old": true}')
    with pytest.raises(WriteError, match=words) as info, atomic_path(final) as tmp:
        tmp.write_text("half")
        raise OSError(code, os.strerror(code))
    assert info.value.path == str(final) and str(final) in info.value.message
    assert info.value.hint and isinstance(info.value, EdgeTLError)
    assert json.loads(final.read_text()) == {"old": True}  # the old file is untouched
    assert sorted(p.name for p in final.parent.iterdir()) == ["result.json"]  # temp file gone


@pytest.mark.parametrize("message", ["basic_ios::clear: iostream error",
                                     "[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534",
                                     "PytorchStreamWriter failed writing file data/0: file write failed"])
def test_torch_writer_runtime_error_is_a_write_error(tmp_path: Path, message: str) -> None:
    final = tmp_path / "model.pt"
    with pytest.raises(WriteError, match=r"cannot write .*model\.pt"), atomic_path(final):
        raise RuntimeError(message)
    assert list(tmp_path.iterdir()) == []


def test_other_errors_are_not_disguised(tmp_path: Path) -> None:
    """Only write faults are translated: a bug (ValueError), another errno, or a read of another file stay."""
    with pytest.raises(ValueError), atomic_path(tmp_path / "a.json"):
        raise ValueError("a bug")
    with pytest.raises(FileNotFoundError), atomic_path(tmp_path / "a.json"):
        raise FileNotFoundError(errno.ENOENT, "gone", "elsewhere.txt")
    assert write_error(tmp_path / "a.json", PermissionError(errno.EACCES, "denied", "some_input.jpg")) is None
    assert write_error(tmp_path / "a.json", RuntimeError("CUDA out of memory")) is None
    named = write_error(tmp_path / "a.json", OSError(errno.ENOSPC, "full", "/elsewhere/cache.npy"))
    assert named is not None and named.path == "/elsewhere/cache.npy"  # a write-only errno names its own file
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_is_a_write_error(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(EdgeTLError, match=r"not writable|permission denied"):
            atomic_write_text(folder / "x.json", "{}")
    finally:
        folder.chmod(0o700)


def test_real_file_size_limit_in_a_subprocess(tmp_path: Path) -> None:
    """torch.save and a plain write under a real RLIMIT_FSIZE: WriteError with the limit, nothing left."""
    code = f"""
import resource, sys, torch
from edge_tl._io import atomic_path, atomic_write_bytes
from edge_tl.errors import WriteError
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
for name, write in [("state.pt", lambda t: torch.save({{"w": torch.zeros(10000)}}, t)),
                    ("blob.bin", lambda t: t.write_bytes(bytes(10000)))]:
    try:
        with atomic_path(__import__("pathlib").Path({str(tmp_path)!r}) / name) as tmp:
            write(tmp)
    except WriteError as exc:
        print(exc.message)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2 and all("file too large (the file-size limit is 4,096 bytes)" in ln for ln in lines)
    assert "state.pt" in lines[0] and "blob.bin" in lines[1]
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- inputs and foreign files are never replaced

def test_protected_input_is_never_replaced(tmp_path: Path) -> None:
    photo = tmp_path / "a.json"
    photo.write_text('{"mine": 1}')
    with protected_inputs([photo]), pytest.raises(OutputConflictError, match="also an input"):
        atomic_write_json(photo, {"result": 2})
    assert json.loads(photo.read_text()) == {"mine": 1}
    atomic_write_json(photo, {"result": 2})  # outside the command, the same write is allowed
    assert json.loads(photo.read_text()) == {"result": 2}


def _plot_png(path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(1, 1))
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def test_output_kinds_tell_our_files_from_foreign_ones(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text("[1, 2]")
    (tmp_path / "notes.json").write_text("not json at all")
    (tmp_path / "t.csv").write_text("name,p50\nmodel.onnx,1.5\n")
    (tmp_path / "m.onnx").write_bytes(b"\x08\x07\x12\x00\x00\xff\xfe")
    image(tmp_path / "photo.png", 8, 50)
    _plot_png(tmp_path / "plot.png")
    assert OUTPUT_KINDS["json"](tmp_path / "r.json") and not OUTPUT_KINDS["json"](tmp_path / "notes.json")
    assert OUTPUT_KINDS["png"](tmp_path / "plot.png") and not OUTPUT_KINDS["png"](tmp_path / "photo.png")
    assert OUTPUT_KINDS["text"](tmp_path / "t.csv") and not OUTPUT_KINDS["text"](tmp_path / "m.onnx")
    check_output_file(tmp_path / "plot.png", "png")
    check_output_file(tmp_path / "new.png", "png")
    with pytest.raises(OutputConflictError, match="not a png file edge-tl wrote"):
        check_output_file(tmp_path / "photo.png", "png", what="--plot")
    check_output_file(tmp_path / "photo.png", "png", force=True)
    with pytest.raises(OutputConflictError, match="is a folder"):
        check_output_file(tmp_path, "json")
    with protected_inputs([tmp_path / "plot.png"]), pytest.raises(OutputConflictError, match="also an input"):
        check_output_file(tmp_path / "plot.png", "png", force=True)  # --force never replaces an input


# ---------------------------------------------------------------- every writing command under `ulimit -f`

@dataclass(frozen=True)
class Fault:
    """One command run under ``ulimit -f KIB``; ``outputs`` are the folders/files it may leave (checked)."""

    id: str
    argv: str
    outputs: tuple[str, ...]
    kib: int = 1
    absent: tuple[str, ...] = ()  # must not exist afterwards


FAULT_CASES = [
    Fault("train", "train --data imgs --backbone tiny_cnn --weights none --img-size 32 --epochs 1 --mode finetune "
          "--workers 0 --quiet --out runs/new", ("runs/new",)),
    # past split.json and the feature cache, into torch's checkpoint writer (train_state.pt / model.pt)
    Fault("train-checkpoint", "train --data imgs --backbone tiny_cnn --weights none --img-size 32 --epochs 1 "
          "--mode finetune --workers 0 --quiet --out runs/new", ("runs/new",), kib=20),
    # the named dataset `sample` is generated into the (fresh) cache first: no half-written sample may stay there
    Fault("train-sample-generation", "train --data sample --backbone tiny_cnn --weights none --img-size 32 "
          "--epochs 1 --mode finetune --quiet --out runs/new", ("runs/new",), absent=("cache/sample-v1",)),
    Fault("export-onnx", "export --model runs/tiny --format onnx --out exp --no-verify", ("exp",)),
    Fault("eval", "eval --model runs/tiny --plot ev.png --json ev.json --quiet", ("ev.png", "ev.json")),
    Fault("predict", "predict cat.png --backbone tiny_cnn --weights none --top 100 --json pred.json",
          ("pred.json",)),
    Fault("bench", "bench good.onnx --data ds --json b.json --csv b.csv --min-time 0.05 --threads 1 --warmup 1",
          ("b.json", "b.csv")),
    Fault("attack", "attack --model good.onnx --data ds --n 4 --attacks fgsm --eps 8/255 --out att", ("att",)),
    Fault("visualize", "visualize --backbone tiny_cnn --weights none --class 1 --steps 2 --size 32 --out v.png",
          ("v.png",)),
    Fault("report", "report runs/tiny --out r.html", ("r.html",)),
    Fault("data-check", "data check imgs --json dc.json", ("dc.json",), kib=0),
]


def _fault_case_dir(d: Path, tiny_run: Path, sample_dir: Path) -> None:
    shutil.copytree(tiny_run, d / "runs" / "tiny")
    shutil.copytree(sample_dir, d / "imgs")  # what train and data check read
    for asset in ("image", "good.onnx", "dataset"):  # a cat/dog model, and cat/dog images for bench and attack
        ASSETS[asset](d)


TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}")  # atomic_path's ".<stem>.<8 random chars><suffix>", mkdtemp's too


def _check_whole(folder: Path) -> None:
    """Every file under ``folder`` loads: edge-tl's own readers for a flat folder, the format's reader below."""
    if not any(p.is_dir() for p in folder.iterdir()):
        assert check_final_files(folder) == []
        return
    for p in folder.rglob("*"):
        if p.is_file():
            assert not TEMP_NAME.match(p.name), f"temp file left: {p}"
            assert loads(p)


@pytest.mark.slow
@pytest.mark.parametrize("c", FAULT_CASES, ids=[c.id for c in FAULT_CASES])
def test_command_under_file_size_limit(c: Fault, tmp_path: Path, tiny_run: Path, sample_dir: Path) -> None:
    _fault_case_dir(tmp_path, tiny_run, sample_dir)
    cache = tmp_path / "cache"  # training gets a fresh cache (its feature cache's writes hit the limit too)
    if not c.id.startswith("train"):  # the others a warm one, so they reach their own outputs sooner
        shutil.copytree(os.environ["EDGE_TL_CACHE"], cache, ignore=shutil.ignore_patterns("sample-v1"))
    env = {"EDGE_TL_CACHE": str(cache), "MPLCONFIGDIR": str(tmp_path / "mpl"), "EDGE_TL_DEBUG": "0"}
    before = listing(tmp_path)
    code, out, err = cli_process(c.argv.split(), tmp_path, env=env,
                                 prefix=["bash", "-c", f"ulimit -f {c.kib}; exec \"$@\"", "edge-tl"])
    assert code == 2, f"edge-tl {c.argv}: exit {code}\n{err[-3000:]}"
    assert "Traceback" not in err + out
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err[-2000:]
    assert errors[0].startswith("error: cannot write ") and "file too large" in errors[0] and " -- " in errors[0]
    hidden = [p for p in listing(tmp_path) - before if TEMP_NAME.match(Path(p).name) and not p.startswith("mpl")]
    assert not hidden, f"temp files left: {hidden}"  # in the outputs and in the cache
    for name in c.outputs:  # whatever was finished before the fault is whole
        p = tmp_path / name
        if p.is_dir():
            _check_whole(p)
        elif p.exists():
            assert loads(p)
    assert not [a for a in c.absent if (tmp_path / a).exists()]


# ---------------------------------------------------------------- every writing command on a really full disk

FULL_DISK_CASES = {
    "train": "train --data imgs --backbone tiny_cnn --weights none --img-size 32 --epochs 1 --mode finetune "
             "--workers 0 --quiet --out {full}/run",
    "export-onnx": "export --model runs/tiny --format onnx --no-verify --out {full}/exp",
    "eval": "eval --model runs/tiny --plot {full}/ev.png --quiet",
    "predict": "predict cat.png --model good.onnx --json {full}/p.json",
    "bench": "bench good.onnx --data ds --csv {full}/b.csv --min-time 0.05 --threads 1 --warmup 1",
    "attack": "attack --model good.onnx --data ds --n 4 --attacks fgsm --eps 8/255 --out {full}/att",
    "visualize": "visualize --backbone tiny_cnn --weights none --class 1 --steps 2 --size 32 --out {full}/v.png",
    "report": "report runs/tiny --out {full}/r.html",
    "data-check": "data check imgs --json {full}/dc.json",
}


@pytest.fixture
def full_disk(tmp_path: Path) -> Path:
    """A 64 KiB tmpfs filled to the last byte (needs root and mount; skipped elsewhere)."""
    mnt = tmp_path / "full"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode(errors='replace').strip()}")
    try:
        with open(mnt / "filler", "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FULL_DISK_CASES))
def test_command_on_full_disk(name: str, full_disk: Path, tmp_path: Path, tiny_run: Path, sample_dir: Path,
                              monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture) -> None:
    (tmp_path / "work").mkdir()
    _fault_case_dir(tmp_path / "work", tiny_run, sample_dir)
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.delenv("EDGE_TL_DEBUG", raising=False)
    before = files(tmp_path / "work")
    capfd.readouterr()
    code, _, err = cli(FULL_DISK_CASES[name].format(full=full_disk).split(), capfd)
    assert code == 2, err[-2000:]
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err[-2000:]
    assert errors[0].startswith(f"error: cannot write {full_disk}/") and "no space left" in errors[0], errors[0]
    assert [p.name for p in full_disk.rglob("*") if p.is_file()] == ["filler"]  # nothing partial, no temp file
    assert files(tmp_path / "work") == before  # no input touched
