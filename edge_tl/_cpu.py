"""The cores this process may run on: the one count every default thread number starts from."""

from __future__ import annotations

import os


def int8_overflow_risk(cpuinfo: str | None = None) -> bool:
    """True on an x86 CPU without VNNI (no AVX512-VNNI, AVX-VNNI or AMX): 8-bit kernels there (ONNX Runtime's
    u8 x s8 GEMMs, OpenVINO's) add pairs of u8 x s8 products in int16, which saturates for full-range 8-bit
    weights; 7-bit weights cannot saturate. False where unknown."""
    from pathlib import Path

    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    line = next((ln for ln in cpuinfo.splitlines() if ln.startswith("flags")), "")
    flags = set(line.partition(":")[2].split())
    return "avx2" in flags and not flags & {"avx512_vnni", "avx_vnni", "amx_int8"}


def usable_cores() -> int:
    """Cores this process may run on (affinity-aware: a ``taskset`` or container CPU set counts, not the host)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1
