"""The timed call for each runtime: the engine alone, on an input prepared once.

``edge-tl bench`` and the export budget's candidate latencies both time this call, so a latency means the same
thing everywhere: only what a deployed app pays per inference, the runtime's engine call on a tensor that is
already normalised, laid out and (for int8 inputs) quantised, so the loop allocates nothing of its own. Each runtime name
maps to an adapter that builds that call from the loaded :class:`~edge_tl.runtimes.base.Runtime`; a runtime
that has no adapter is timed through its public ``__call__`` (and its rows say so: ``loop = "runtime-call"``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_tl.data.preprocess import normalize
from edge_tl.registry import Registry

MIN_RUNS = 5  # timed runs at the least, however slow a call is


@dataclass(frozen=True)
class TimedCall:
    """``fn()`` runs one inference of the prepared batch; ``context()`` wraps warm-up and the timed loop."""

    fn: Callable[[], Any]
    loop: str  # "engine" | "runtime-call"
    context: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext


Adapter = Callable[[Any, np.ndarray], TimedCall]
ADAPTERS: Registry[Adapter] = Registry("bench engine")


def register_engine(runtime_name: str) -> Callable[[Adapter], Adapter]:
    """Register ``adapter(runtime, pixels) -> TimedCall`` for runtimes whose ``name`` is ``runtime_name``."""
    return ADAPTERS.register(runtime_name)


def timed_call(runtime: Any, pixels: np.ndarray) -> TimedCall:
    """The tightest faithful call for ``runtime`` on the uint8 batch ``pixels``."""
    adapter = ADAPTERS.find(getattr(runtime, "name", ""))
    if adapter is not None:
        return adapter(runtime, pixels)
    return TimedCall(lambda: runtime(pixels), "runtime-call")


@register_engine("onnxruntime")
def _onnxruntime(rt: Any, pixels: np.ndarray) -> TimedCall:
    x = rt.input_tensor(pixels)  # prepared once; run_tensor is the session call alone
    return TimedCall(lambda: rt.run_tensor(x), "engine")


@register_engine("litert")
def _litert(rt: Any, pixels: np.ndarray) -> TimedCall:
    it = rt.interpreter
    detail = it.get_input_details()[0]
    x = rt.input_tensor(pixels)
    if int(detail["shape"][0]) != len(x):
        it.resize_tensor_input(detail["index"], list(x.shape), strict=False)
        it.allocate_tensors()
    it.set_tensor(detail["index"], x)  # set once, as TFLite's benchmark_model does
    return TimedCall(it.invoke, "engine")


@register_engine("openvino")
def _openvino(rt: Any, pixels: np.ndarray) -> TimedCall:
    req = rt.request(len(pixels))  # compiled for this batch size (batch 1 at load time)
    req.set_input_tensor(0, _ov_tensor(rt.input_tensor(pixels)))  # set once, like benchmark_app
    return TimedCall(req.infer, "engine")


def _ov_tensor(x: np.ndarray) -> Any:
    import openvino as ov

    return ov.Tensor(x)


@register_engine("pytorch")
def _pytorch(rt: Any, pixels: np.ndarray) -> TimedCall:
    import torch

    model = rt.model
    x = torch.from_numpy(normalize(pixels, rt.card.input, "NCHW"))

    @contextlib.contextmanager
    def inference() -> Iterator[None]:
        with torch.inference_mode():
            yield

    return TimedCall(lambda: model(x), "engine", inference)


def time_loop(fn: Any, min_time: float, warmup: int, max_runs: int = 1_000_000) -> np.ndarray:
    """Warm up, then time ``fn()`` until ``min_time`` seconds have passed (at least :data:`MIN_RUNS` runs).

    Warm-up is ``warmup`` runs but stops early once it has taken ``min_time / 2`` seconds (a slow model needs
    fewer). The buffer is sized from the warm-up timings, so the loop itself only calls ``perf_counter`` and
    stores one float per run.
    """
    clock = time.perf_counter
    t0, done = clock(), 0
    while done < warmup:
        fn()
        done += 1
        if clock() - t0 >= min_time / 2:
            break
    per_run = (clock() - t0) / done if done else 0.0
    expect = int(min_time / per_run * 1.2) + MIN_RUNS if per_run > 0 else 1024
    times = np.empty(min(max(expect, MIN_RUNS), max_runs), dtype=np.float64)
    n, start = 0, clock()
    while True:
        while n < len(times):
            a = clock()
            fn()
            times[n] = clock() - a
            n += 1
            if n >= MIN_RUNS and times[n - 1] + a - start >= min_time:
                return times[:n].copy()
        if len(times) >= max_runs:
            return times[:n].copy()
        times = np.concatenate([times, np.empty(min(len(times), max_runs - len(times)))])


def median_ms(fn: Callable[[], object], runs: int = 30, min_time: float = 0.3) -> float:
    """Median single-call latency of ``fn`` in ms, through :func:`time_loop` (warm-up, then up to ``runs``)."""
    return float(np.median(time_loop(fn, min_time=min_time, warmup=5, max_runs=runs)) * 1e3)


def batch1_ms(runtime: Any, runs: int = 30, min_time: float = 0.3) -> float:
    """Median latency in ms of ``runtime``'s :func:`timed_call` on one image: the figure bench reports per
    inference, and the one the export budget compares its candidates by."""
    size = runtime.card.input.size
    call = timed_call(runtime, np.zeros((1, size, size, 3), np.uint8))
    with call.context():
        return median_ms(call.fn, runs, min_time)
