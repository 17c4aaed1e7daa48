"""What the real-photo accuracy benchmarks share: where the photos are, the skip rule, the machine-load line and
the 95 % Wilson interval. Imported by the scripts next to it (``python benchmarks/NAME.py`` puts this folder on
``sys.path``)."""

from __future__ import annotations

import math
import os
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def datasets(names: str) -> list[Path] | None:
    """The dataset folders named in a comma-separated list, or ``None`` (after saying so) when one is absent."""
    found = [SHARED / d for d in names.split(",") if d]
    missing = [str(d) for d in found if not d.is_dir()]
    if missing:
        print(f"skipped: {', '.join(missing)} not found (this benchmark needs ../shared/data)")
        return None
    return found


def load_line() -> str:
    """The machine's load, which the timings depend on (these machines are shared)."""
    one, five, _ = os.getloadavg()
    return (f"load average {one:.1f} (5 min: {five:.1f}) on {os.cpu_count()} cores (shared machine: times are "
            f"noisy); data from {SHARED}")


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion ``k / n``."""
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


# accuracy goals on the real photos (k-fold, every image predicted once)
GOALS = {("catsdogs", "mobilenet_v2"): 0.983, ("catsdogs", "efficientnet_lite0"): 0.990,
         ("pets37", "efficientnet_lite0"): 0.915}
FINETUNE_GOALS = {"pets37": 0.93}


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value of paired counts (images only A gets right, images only B gets right):
    the chance of a split at least this uneven if both heads were equally good."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0 ** n
    return min(1.0, 2.0 * tail)
