"""The cores this process may run on: the one count every default thread number starts from."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """Cores this process may run on (affinity-aware: a ``taskset`` or container CPU set counts, not the host)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1
