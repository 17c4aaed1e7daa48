"""Library calls print nothing and change no global state; progress reaches the caller's reporter instead."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from edge_tl.cli.progress import ConsoleReporter
from edge_tl.progress import Recorder
from edge_tl.train.api import train
from edge_tl.train.evaluate import evaluate
from helpers.models import train_config


@pytest.fixture
def svg_backend() -> Iterator[str]:
    """Switch matplotlib to a backend the library would never pick, and restore the old one afterwards."""
    import matplotlib

    old = matplotlib.get_backend()
    matplotlib.use("svg", force=True)
    yield matplotlib.get_backend()
    matplotlib.use(old, force=True)


def _tasks(rec: Recorder) -> dict[str, dict[str, object]]:
    return {str(t["description"]): t for t in rec.tasks}


def test_train_and_eval_are_silent_and_report_to_the_reporter(sample_dir: Path, tmp_path: Path,
                                                              capfd: pytest.CaptureFixture[str],
                                                              svg_backend: str) -> None:
    import matplotlib

    capfd.readouterr()
    rec = Recorder()
    res = train(train_config(sample_dir, tmp_path / "run"), reporter=rec)
    n_files = len(list(sample_dir.rglob("*.jpg")))
    tasks = _tasks(rec)
    assert tasks["scanning images"]["total"] == n_files == tasks["scanning images"]["done"]
    split = res.split
    feats = tasks["features"]
    assert feats["total"] == split["train"] + split["val"] + split["test"] == feats["done"] and feats["unit"] == "img"
    assert all(t["finished"] for t in rec.tasks)
    notes = " | ".join(m for _, m in rec.notes)
    assert "features training of tiny_cnn" in notes and "test accuracy" in notes and "head (train + val)" in notes

    ev = Recorder()
    out = evaluate(res.run_dir, plot=tmp_path / "cm.png", reporter=ev)
    assert _tasks(ev)["evaluating"]["total"] == out.report.total == split["test"]

    assert tuple(capfd.readouterr()) == ("", "")
    assert matplotlib.get_backend() == svg_backend  # plots were written without switching the backend
    assert (res.run_dir / "curves.png").read_bytes()[:4] == b"\x89PNG"


def _console(terminal: bool) -> tuple[object, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=terminal, width=200), buf


def test_console_reporter_in_a_log_prints_start_progress_and_done_lines() -> None:
    console, buf = _console(terminal=False)
    rep = ConsoleReporter(console, every_s=0.0)  # type: ignore[arg-type]
    assert rep.terminal is False
    rep.note("hygiene scan: skipping 1 bad file(s) [x]", level="warning")
    with rep.task("epoch 1/3", 10, "img") as advance:
        advance(4)
        advance(6)
    lines = buf.getvalue().splitlines()
    assert lines[0] == "hygiene scan: skipping 1 bad file(s) [x]"  # markup-like text printed as is
    assert lines[1] == "epoch 1/3 ..."
    assert lines[2].startswith("epoch 1/3: 4/10 img, ") and "img/s" in lines[2] and "ETA" in lines[2]
    assert lines[-1].startswith("epoch 1/3: done, 10/10 img, ") and "img/s" in lines[-1]


def test_console_reporter_quiet_modes_and_nested_bars() -> None:
    console, buf = _console(terminal=False)
    rep = ConsoleReporter(console, tasks=False)  # type: ignore[arg-type]
    rep.note("kept")
    with rep.task("dropped", 3) as advance:
        advance(3)
    assert buf.getvalue() == "kept\n"
    console, buf = _console(terminal=True)
    bars = ConsoleReporter(console)  # type: ignore[arg-type]
    with bars.task("outer", 2, "img") as a, bars.task("inner", None, "fit") as b:  # one shared display
        a(1)
        b(5)
        bars.note("between bars")
    assert "between bars" in buf.getvalue() and bars._live is None
