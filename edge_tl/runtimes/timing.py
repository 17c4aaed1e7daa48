"""The timed call for each runtime: the engine alone, on an input prepared once.

``edge-tl bench`` and the export budget's candidate latencies both time this call, so a latency means the same
thing everywhere: only what a deployed app pays per inference, the runtime's engine call on a tensor that is
already normalised, laid out and (for int8 inputs) quantised, so the loop allocates nothing of its own. Each runtime name
maps to an adapter that builds that call from the loaded :class:`~edge_tl.runtimes.base.Runtime`; a runtime
that has no adapter is timed through its public ``__call__`` (and its rows say so: ``loop = "runtime-call"``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_tl.data.preprocess import normalize
from edge_tl.registry import Registry


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
