"""Small helpers of the attack engine: query tallies from cells, the per-image stream keys an attack accepts,
the C heap trim after the surrogate's gradients, and eps labels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge_tl.attacks.registry import AttackSpec
from edge_tl.attacks.results import AttackResult


def queries_sent(results: list[AttackResult], specs: Sequence[AttackSpec]) -> dict[str, tuple[int, float]]:
    """Per model: black-box queries sent and the seconds they took, from the cells (so a resumed run reports
    the same); a minimum-distance attack's one run is counted once, not once per eps."""
    once = {s.name for s in specs if not s.eps_bounded}
    out: dict[str, tuple[int, float]] = {}
    seen: set[tuple[str, str]] = set()
    for r in results:
        if not r.queries_sent or not r.queries_per_s or (r.attack in once and (r.model, r.attack) in seen):
            continue
        seen.add((r.model, r.attack))
        q, sec = out.get(r.model, (0, 0.0))
        out[r.model] = (q + r.queries_sent, sec + r.queries_sent / r.queries_per_s)
    return out


def trim_heap() -> None:
    """Hand the C heap's free memory back to the system (glibc keeps freed torch activations otherwise)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)
    except OSError:
        pass


def ids_kwarg(spec: AttackSpec, idx: np.ndarray) -> dict[str, np.ndarray]:
    """``ids=idx`` for attacks that key their random streams by image (Square, HopSkipJump), else nothing."""
    import inspect

    return {"ids": idx} if "ids" in inspect.signature(spec.run).parameters else {}


def rate(queries: np.ndarray | None, seconds: float) -> float | None:
    return float(queries.sum()) / seconds if queries is not None and seconds > 0 and queries.sum() else None


def fmt_eps(eps: float, norm: str) -> str:
    return f"{eps * 255:g}/255" if norm == "linf" else f"{eps:g}"
