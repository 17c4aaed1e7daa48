"""XNNPACK delegation of a TFLite file: how many partitions LiteRT's default delegate makes of the graph, and the
export warning when int8 splits the graph more than float does (ops between partitions run on LiteRT's slower
reference kernels).
"""

from __future__ import annotations

import time

import numpy as np


def xnnpack_partitions(content: bytes, threads: int = 1) -> int:
    """How many XNNPACK partitions the interpreter makes of ``content`` (1 = the whole graph is delegated)."""
    from edge_tl.runtimes.litert_rt import make_interpreter

    it = make_interpreter(content, threads)
    return sum(1 for op in it._get_ops_details() if op["op_name"] == "DELEGATE")


def _median_ms(content: bytes, size: int, runs: int = 15) -> float:
    from edge_tl.runtimes.litert_rt import make_interpreter

    it = make_interpreter(content, 1)
    d = it.get_input_details()[0]
    x = np.zeros((1, size, size, 3), dtype=d["dtype"])
    it.set_tensor(d["index"], x)
    it.invoke()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        it.invoke()
        times.append(time.perf_counter() - t)
    return 1000.0 * float(np.median(times))


def _op_names(content: bytes) -> set[str]:
    from edge_tl.runtimes.litert_rt import make_interpreter

    return {op["op_name"] for op in make_interpreter(content, 1)._get_ops_details()}


def partition_note(float_content: bytes, q_content: bytes, size: int) -> str | None:
    """A warning when the quantised graph is split into more XNNPACK partitions than the float one (ops between
    partitions run on LiteRT's slower reference kernels), with a quick latency comparison; None otherwise."""
    pf, pq = xnnpack_partitions(float_content), xnnpack_partitions(q_content)
    if pq <= pf:
        return None
    ms_f, ms_q = _median_ms(float_content, size), _median_ms(q_content, size)
    cause = " (the model has hard-swish, which XNNPACK does not run in int8)" if "HARD_SWISH" in _op_names(
        q_content) else ""
    advice = "; prefer model.tflite or model_fp16.tflite on this backbone" if ms_q > ms_f else ""
    return (f"the int8 graph is split into {pq} XNNPACK partitions (float: {pf}){cause}; 1 thread: "
            f"{ms_q:.2f} ms int8 vs {ms_f:.2f} ms float ({ms_q / ms_f:.1f}x){advice}")
