"""Measurement in a spawned process: timings, peak memory of the child, failures as errors, bugs re-raised."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from edge_tl.bench.measure import BenchWorkerBug, MeasureJob, peak_rss_mb, run_job, time_loop
from helpers import bench_fakes as fakes


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    x, y = fakes.pixels(12)
    path = tmp_path_factory.mktemp("bench_measure") / "eval.npz"
    np.savez(path, pixels=x, labels=y)
    return path


def job(data: Path, name: str, **kw: object) -> MeasureJob:
    return MeasureJob(path=str(data.parent / name), threads=1, data=str(data), min_time=0.05, warmup=2,
                      loader=fakes.LOADER, timeout=60, **kw)


def test_time_loop_runs_for_min_time() -> None:
    calls = []
    t = time.perf_counter()
    samples = time_loop(lambda: calls.append(time.sleep(0.001)), min_time=0.05, warmup=3)
    assert time.perf_counter() - t >= 0.05
    assert len(samples) + 1 <= len(calls) <= len(samples) + 3  # warm-up may stop early on a loaded machine
    assert samples.sum() >= 0.045 and np.all(samples >= 0.0009)
    # warm-up stops after min_time / 2 seconds however many runs were asked for
    calls.clear()
    samples = time_loop(lambda: calls.append(time.sleep(0.005)), min_time=0.04, warmup=1000)
    assert len(calls) - len(samples) <= 5
    # a fast function fills and grows its buffer
    assert len(time_loop(lambda: None, min_time=0.02, warmup=0)) > 1024


def test_child_measures_and_scores(data: Path) -> None:
    m = run_job(job(data, "ok.fake"))
    assert m.error is None
    assert m.runtime == "fake" and m.loop == "runtime-call"
    assert m.samples is not None and len(m.samples) >= 5 and m.samples.sum() >= 0.04
    assert m.load_s is not None and m.first_s is not None
    assert m.n_eval == 12 and m.labels_ok == 12 and m.top5_hits == 12  # the fake is a perfect classifier
    assert m.top1.tolist() == fakes.pixels(12)[1].tolist()
    assert m.peak_rss_mb is not None and 5 < m.peak_rss_mb < 2000


def test_child_rss_is_its_own(data: Path) -> None:
    """The hog holds 200 MiB in the child: its peak shows it, the parent's does not."""
    before = peak_rss_mb()
    small = run_job(job(data, "ok.fake", accuracy=False))
    hog = run_job(job(data, "hog.fake", accuracy=False))
    assert hog.peak_rss_mb - small.peak_rss_mb > 180
    assert peak_rss_mb() - before < 100
    assert small.top1 is None and small.n_eval == 0


def test_child_pins_cores(data: Path) -> None:
    m = run_job(job(data, "ok.fake", affinity=(0,), accuracy=False))
    assert m.affinity == (0,)
    assert len(os.sched_getaffinity(0)) >= 1  # the parent is untouched


def test_bug_in_child_is_raised(data: Path) -> None:
    with pytest.raises(BenchWorkerBug, match="ZeroDivisionError"):
        run_job(job(data, "bug.fake"))
