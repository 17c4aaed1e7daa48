"""The environment a benchmark ran in: CPU, instruction sets, cores, affinity, library versions, threads,
and how busy the machine was (other processes steal cores and make latencies noisy)."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge_tl.card import library_versions

# /proc/cpuinfo flag -> the name people know it by. Order = the order shown.
ISA_FLAGS: dict[str, str] = {
    "avx2": "AVX2", "fma": "FMA", "avx512f": "AVX-512", "avx512_vnni": "AVX512-VNNI", "avx_vnni": "AVX-VNNI",
    "avx512_bf16": "AVX512-BF16", "avx512_fp16": "AVX512-FP16", "amx_tile": "AMX", "amx_int8": "AMX-INT8",
    "amx_bf16": "AMX-BF16", "asimd": "NEON", "asimddp": "NEON-DOTPROD",
}
LIBRARIES = ("edge-tl", "numpy", "onnxruntime", "ai-edge-litert", "openvino", "torch", "onnx")
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "ORT_NUM_THREADS",
              "TF_NUM_INTRAOP_THREADS")


@dataclass(frozen=True)
class Fingerprint:
    """Where the numbers came from; stored once per bench run."""

    cpu_model: str
    isa: tuple[str, ...]
    logical_cores: int
    physical_cores: int | None
    affinity: tuple[int, ...]
    memory_gb: float | None
    loadavg: tuple[float, float, float] | None
    python: str
    platform: str
    versions: dict[str, str] = field(default_factory=dict)
    thread_env: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line for the bottom of a table."""
        isa = "/".join(self.isa) or "no SIMD flags found"
        load = f", load {self.loadavg[0]:.2f}" if self.loadavg else ""
        libs = ", ".join(f"{k} {v}" for k, v in self.versions.items() if k != "edge-tl")
        return (f"{self.cpu_model} ({isa}), {len(self.affinity)}/{self.logical_cores} cores usable{load}; "
                f"{libs}")


def _cpuinfo(text: str) -> tuple[str, tuple[str, ...]]:
    model, flags = "", set[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return model or platform.processor() or platform.machine(), tuple(v for k, v in ISA_FLAGS.items() if k in flags)


def read_loadavg() -> tuple[float, float, float] | None:
    """1/5/15-minute load averages, or None where the OS has none."""
    try:
        a, b, c = os.getloadavg()
    except OSError:
        return None
    return round(a, 2), round(b, 2), round(c, 2)


def fingerprint() -> Fingerprint:
    """Collect the environment (cheap: reads /proc and package metadata, imports no backend)."""
    import psutil

    try:
        model, isa = _cpuinfo(Path("/proc/cpuinfo").read_text())
    except OSError:
        model, isa = platform.processor() or platform.machine(), ()
    try:
        affinity = tuple(sorted(os.sched_getaffinity(0)))
    except AttributeError:
        affinity = tuple(range(os.cpu_count() or 1))
    return Fingerprint(
        cpu_model=model, isa=isa, logical_cores=os.cpu_count() or 1,
        physical_cores=psutil.cpu_count(logical=False), affinity=affinity,
        memory_gb=round(psutil.virtual_memory().total / 2**30, 1), loadavg=read_loadavg(),
        python=platform.python_version(), platform=platform.platform(terse=True),
        versions=library_versions(*LIBRARIES), thread_env={k: os.environ[k] for k in THREAD_ENV if k in os.environ},
    )


class BusyMeter:
    """How many cores *other* processes kept busy between :meth:`start` and :meth:`stop`.

    Reads the machine-wide busy time from ``/proc/stat`` and subtracts this process's own CPU time, so a
    measurement can say "another process used 0.9 cores while I was timing". Returns None off Linux.
    """

    def __init__(self) -> None:
        self._t0 = self._busy0 = self._own0 = 0.0

    @staticmethod
    def _machine_busy() -> float | None:
        try:
            with open("/proc/stat") as f:
                fields = f.readline().split()[1:]
        except OSError:
            return None
        ticks = [int(v) for v in fields]
        idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
        busy = sum(ticks[:8]) - idle  # guest time is already counted in user
        return busy / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own() -> float:
        t = os.times()
        return t.user + t.system

    def start(self) -> None:
        self._busy0 = self._machine_busy() or 0.0
        self._own0 = self._own()
        self._t0 = time.perf_counter()

    def stop(self) -> float | None:
        busy = self._machine_busy()
        wall = time.perf_counter() - self._t0
        if busy is None or wall <= 0:
            return None
        others = (busy - self._busy0) - (self._own() - self._own0)
        return max(0.0, others / wall)
