"""Batch-1, 1-thread latency of every (file, runtime) pair through the Runtime call a deployed app makes."""

from __future__ import annotations

import importlib.util

import pytest

PAIRS = [  # (file, runtime, package the runtime needs)
    ("model.onnx", "onnxruntime", "onnxruntime"), ("model_int8.onnx", "onnxruntime", "onnxruntime"),
    ("model.tflite", "litert", "ai_edge_litert"), ("model_int8.tflite", "litert", "ai_edge_litert"),
    ("model.xml", "openvino", "openvino"), ("model_int8.xml", "openvino", "openvino"),
    ("model.onnx", "openvino", "openvino"),
]


@pytest.mark.parametrize(("name", "runtime", "package"), PAIRS, ids=[f"{r}-{n}" for n, r, _ in PAIRS])
def test_batch1_latency(benchmark, exported, pixels, name, runtime, package):
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed")
    if name not in exported:
        pytest.skip(f"{name} was not exported (its converter is not installed)")
    from _workloads import batch1

    from edge_tl.errors import EdgeTLError

    try:
        call = batch1(exported[name], pixels, threads=1, runtime=runtime)
    except EdgeTLError as exc:  # e.g. an int8 IR that came out unquantised: say so, time the others
        pytest.skip(f"{name} cannot run on {runtime}: {exc}")
    benchmark.extra_info.update(file=name, runtime=runtime, threads=1, batch=1)
    logits = benchmark(call)
    assert logits.shape[0] == 1 and logits.shape[1] >= 2
