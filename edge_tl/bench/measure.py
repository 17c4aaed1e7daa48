"""One measurement = one artefact x thread count, in its own spawned process.

A fresh process per measurement isolates thread pools, allocator caches and imported backends, pins the cores
(``--profile mobile``) before any backend starts its threads, and gives an honest peak RSS (``VmHWM``). The
child loads the model (timed), runs the first inference (timed), warms up, then times an adaptive number of
runs until ``min_time`` has passed; then, separately, it runs the accuracy pass in batches. Expected failures
(:class:`~edge_tl.errors.EdgeTLError`) come back as an error; a child that dies (signal, OOM) or hangs becomes
an error too; any other exception in the child is a bug and is re-raised in the parent with its traceback.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import resource
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_tl.errors import EdgeTLError
from edge_tl.runtimes.timing import time_loop

DEFAULT_LOADER = "edge_tl.runtimes.base:load"
ACCURACY_BATCH = 32


class BenchWorkerBug(RuntimeError):
    """An unexpected exception inside a measurement process (a bug, not a bad artefact)."""


@dataclass(frozen=True)
class MeasureJob:
    """Everything a child needs. ``data`` is an ``.npz`` with ``pixels`` (uint8 NHWC) and ``labels``."""

    path: str
    threads: int
    data: str
    batch: int = 1
    min_time: float = 2.0
    warmup: int = 10
    accuracy: bool = True
    affinity: tuple[int, ...] | None = None
    loader: str = DEFAULT_LOADER
    runtime: str | None = None  # None: the loader's default for the file's suffix
    max_runs: int = 1_000_000
    timeout: float = 600.0


@dataclass(frozen=True)
class Measurement:
    """What a child reports. Times in seconds, memory in MiB; ``error`` set when it failed."""

    error: str | None = None
    runtime: str | None = None
    precision: str | None = None
    loop: str | None = None
    load_s: float | None = None
    first_s: float | None = None
    samples: np.ndarray | None = None  # seconds per timed run
    other_load: float | None = None
    peak_rss_mb: float | None = None
    affinity: tuple[int, ...] = ()
    top1: np.ndarray | None = None  # predicted class per eval image
    top5_hits: int | None = None
    labels_ok: int | None = None
    n_eval: int = 0


# The backend library per suffix (or runtime), imported before the load timer starts (load time = session creation).
BACKEND_IMPORTS: dict[str, str] = {".pt": "torch", ".onnx": "onnxruntime", ".tflite": "ai_edge_litert.interpreter",
                                   ".xml": "openvino"}
RUNTIME_IMPORTS: dict[str, str] = {"openvino": "openvino", "onnxruntime": "onnxruntime",
                                   "litert": "ai_edge_litert.interpreter", "pytorch": "torch"}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB.

    ``VmHWM`` from ``/proc/self/status`` belongs to this process image only; ``ru_maxrss`` is the fallback off
    Linux, but on Linux it also counts the parent's memory at fork time (it survives ``execve``).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _load_fn(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def _accuracy(runtime: Any, pixels: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, int, int]:
    top1 = np.empty(len(pixels), dtype=np.int64)
    top5_hits = 0
    for i in range(0, len(pixels), ACCURACY_BATCH):
        logits = np.asarray(runtime(pixels[i:i + ACCURACY_BATCH]))
        k = min(5, logits.shape[1])
        best = np.argsort(-logits, axis=1, kind="stable")[:, :k]
        top1[i:i + len(best)] = best[:, 0]
        top5_hits += int((best == labels[i:i + len(best), None]).any(axis=1).sum())
    return top1, top5_hits, int((top1 == labels).sum())


def _measure(job: MeasureJob) -> Measurement:
    from edge_tl.bench.env import BusyMeter
    from edge_tl.runtimes.timing import timed_call

    data = np.load(job.data)
    pixels, labels = data["pixels"], data["labels"]
    if len(pixels) == 0:
        raise EdgeTLError("no evaluation images to run the model on", "pass --data with at least one image")
    reps = -(-job.batch // len(pixels))
    batch = np.ascontiguousarray(np.concatenate([pixels] * reps)[:job.batch])

    backend = RUNTIME_IMPORTS.get(job.runtime or "") or BACKEND_IMPORTS.get(os.path.splitext(job.path)[1])
    if backend:
        try:
            importlib.import_module(backend)
        except ImportError:  # the loader reports the missing backend with its install hint
            pass
    extra = {"runtime": job.runtime} if job.runtime else {}
    t = time.perf_counter()
    runtime = _load_fn(job.loader)(job.path, threads=job.threads, **extra)
    load_s = time.perf_counter() - t
    call = timed_call(runtime, batch)
    meter = BusyMeter()
    with call.context():
        t = time.perf_counter()
        call.fn()
        first_s = time.perf_counter() - t
        meter.start()
        samples = time_loop(call.fn, job.min_time, job.warmup, job.max_runs)
        other = meter.stop()
    peak = peak_rss_mb()  # before the accuracy pass, whose batches would inflate it
    top1, top5, ok = (None, None, None)
    if job.accuracy:
        top1, top5, ok = _accuracy(runtime, pixels, labels)
    return Measurement(runtime=runtime.name, precision=getattr(runtime, "precision", None), loop=call.loop,
                       load_s=load_s, first_s=first_s, samples=samples,
                       other_load=other, peak_rss_mb=peak,
                       affinity=tuple(sorted(os.sched_getaffinity(0))), top1=top1, top5_hits=top5,
                       labels_ok=ok, n_eval=len(pixels) if job.accuracy else 0)


def _child(conn: Any, job: MeasureJob, log: str) -> None:
    """Entry point of the spawned process: pin, limit threads, measure, send one message back.

    The child's stderr (backend chatter such as XNNPACK's INFO lines, warnings) goes to ``log``, which the
    parent quotes when the child dies.
    """
    try:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND)
        os.dup2(fd, 2)
        os.close(fd)
        warnings.simplefilter("ignore")  # the parent reports what matters; warnings would repeat per child
        if job.affinity:
            os.sched_setaffinity(0, job.affinity)
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = str(job.threads)
        conn.send(("ok", _measure(job)))
    except EdgeTLError as exc:
        hint = f" -- {exc.hint}" if exc.hint else ""
        conn.send(("error", f"{exc.message}{hint}".replace("\n", " ")))
    except BaseException:  # noqa: BLE001 - not swallowed: sent to the parent, which re-raises it
        conn.send(("bug", traceback.format_exc()))
    finally:
        conn.close()


def _death(code: int | None) -> str:
    import signal

    if code is None:
        return "did not finish"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def run_job(job: MeasureJob) -> Measurement:
    """Run ``job`` in a fresh spawned process and return its :class:`Measurement` (``error`` set on failure)."""
    with tempfile.NamedTemporaryFile(prefix="edge-tl-bench-", suffix=".log") as log:
        return _run(job, log.name)


def _tail(log: str, n: int = 300) -> str:
    try:
        with open(log, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("INFO:")]
    return (": " + " | ".join(lines[-3:])[-n:]) if lines else ""


def _run(job: MeasureJob, log: str) -> Measurement:
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, job, log), daemon=True)
    proc.start()
    send.close()
    msg = None
    try:
        if recv.poll(job.timeout):
            msg = recv.recv()
    except EOFError:  # the child died before sending anything
        msg = None
    finally:
        recv.close()
    proc.join(timeout=5 if msg is not None else 0.5)
    if proc.is_alive():
        proc.kill()
        proc.join()
        if msg is None:
            return Measurement(error=f"measurement timed out after {job.timeout:.0f} s")
    if msg is None:
        return Measurement(error=f"the measurement process {_death(proc.exitcode)} (a crash inside the runtime)"
                                 f"{_tail(log)}")
    kind, payload = msg
    if kind == "bug":
        raise BenchWorkerBug(f"unexpected error while measuring {job.path}:\n{payload}")
    if kind == "error":
        return Measurement(error=payload)
    return payload
