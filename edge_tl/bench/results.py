"""Bench results as frozen dataclasses: one :class:`BenchRow` per artefact x runtime x thread count, and a
:class:`BenchResult` with the settings, the environment and the recommendation. The CLI only formats them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from edge_tl.bench.env import Fingerprint
from edge_tl.bench.stats import LatencyStats

PEAK_GFLOPS_PER_CORE = 195.0
"""fp32 matrix-multiply peak of one core of the reference machine (2 vCPU Xeon 2.6 GHz, AVX-512), measured with a
large ``torch.mm``: 195 GFLOP/s on 1 core, 372 on 2. Override with
``--peak-gflops`` on other hardware."""


@dataclass(frozen=True)
class BenchSettings:
    """How a bench was run (CLI flags map onto these fields)."""

    threads: tuple[int, ...] = (1, 2)
    batch: int = 1
    profile: str = "desktop"
    min_time: float = 2.0
    warmup: int = 10
    max_drop: float = 1.0
    peak_gflops_per_core: float = PEAK_GFLOPS_PER_CORE
    pin: bool = False
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BenchRow:
    """One measurement. Latencies in ms; accuracy, agreement and peak fraction in percent; memory in MiB."""

    name: str
    path: str
    format: str
    quantization: str
    runtime: str
    threads: int
    batch: int
    status: str  # "ok" | "error"
    error: str | None = None
    size_mb: float | None = None
    params: int | None = None
    macs: int | None = None  # per image
    load_ms: float | None = None
    first_ms: float | None = None
    latency: LatencyStats | None = None
    throughput: float | None = None  # images per second
    gflops: float | None = None
    peak_pct: float | None = None
    peak_rss_mb: float | None = None
    top1: float | None = None
    top5: float | None = None
    agreement: float | None = None
    n_eval: int = 0
    noise: tuple[str, ...] = ()
    affinity: tuple[int, ...] = ()
    loop: str | None = None
    source_sha256: str | None = None
    precision: str | None = None  # what the runtime computed in: f32, bf16, f16, int8
    parity_failed: bool = False  # the artefact's card records a failed parity check: never recommended

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def p50(self) -> float | None:
        return self.latency.p50.value if self.latency else None

    @property
    def p90(self) -> float | None:
        return self.latency.p90.value if self.latency else None

    @property
    def key(self) -> str:
        """Unique within a result: file name, runtime and thread count."""
        return f"{self.name}/{self.runtime}@{self.threads}t"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["latency"] = self.latency.to_json() if self.latency else None
        d["noise"], d["affinity"] = list(self.noise), list(self.affinity)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> BenchRow:
        lat = d.get("latency")
        return cls(**{**d, "latency": LatencyStats.from_json(lat) if lat else None, "noise": tuple(d["noise"]),
                      "affinity": tuple(d["affinity"])})


@dataclass(frozen=True)
class BenchResult:
    """All rows (sorted by latency, failures last), the environment, and the recommended row's key."""

    rows: tuple[BenchRow, ...]
    settings: BenchSettings
    env: Fingerprint
    recommended: str | None = None
    reference_top1: float | None = None
    data: str | None = None
    notes: tuple[str, ...] = ()
    wall_s: float | None = None
    schema: int = 1

    def row(self, key: str) -> BenchRow:
        return next(r for r in self.rows if r.key == key)

    @property
    def recommendation(self) -> BenchRow | None:
        return self.row(self.recommended) if self.recommended else None

    def to_json(self) -> dict[str, Any]:
        return {"schema": self.schema, "settings": self.settings.to_json(), "env": self.env.to_json(),
                "data": self.data, "reference_top1": self.reference_top1, "recommended": self.recommended,
                "notes": list(self.notes), "wall_s": self.wall_s, "rows": [r.to_json() for r in self.rows]}


def sort_rows(rows: list[BenchRow]) -> tuple[BenchRow, ...]:
    """Fastest first by p50; failed rows last, in their original order."""
    ok = sorted((r for r in rows if r.ok and r.p50 is not None), key=lambda r: (r.p50, r.name, r.threads))
    return tuple(ok + [r for r in rows if not (r.ok and r.p50 is not None)])


def recommend(rows: tuple[BenchRow, ...], max_drop: float) -> tuple[str | None, float | None]:
    """The fastest row whose top-1 is within ``max_drop`` points of the reference, and that reference.

    The reference is the PyTorch source's top-1 when it was measured, else the best top-1 of any row. Rows
    whose artefact failed its parity check are never recommended (nor used as the reference).
    """
    scored = [t for t in measured(rows) if not t[0].parity_failed]
    if not scored:
        return None, None
    torch_rows = [top1 for r, _, top1 in scored if r.format == "pytorch"]
    ref = max(torch_rows) if torch_rows else max(top1 for _, _, top1 in scored)
    within = [(p50, r) for r, p50, top1 in scored if top1 >= ref - max_drop - 1e-9]
    best = min(within, key=lambda t: t[0])[1]
    return best.key, ref


def measured(rows: tuple[BenchRow, ...] | list[BenchRow]) -> list[tuple[BenchRow, float, float]]:
    """``(row, p50 ms, top-1 %)`` for every successful row that has both."""
    out = []
    for r in rows:
        p50, top1 = r.p50, r.top1
        if r.ok and p50 is not None and top1 is not None:
            out.append((r, p50, top1))
    return out


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points not dominated in (lower latency, higher accuracy), by increasing latency."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best_acc = [], float("-inf")
    for i in order:
        if points[i][1] > best_acc:
            front.append(i)
            best_acc = points[i][1]
    return front
