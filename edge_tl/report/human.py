"""Numbers in human units (%, ms, MB, 3 significant digits) and field names in words, for the report.

The other commands write JSON for machines (``top1``, ``max_dlogit``, fractions, MAC counts); the report shows
people the same values as "Top-1 accuracy 92.2 %" or "299 M". :func:`label` turns a key into words (a known key
from :data:`LABELS`, any other key de-snake-cased) and :func:`value` formats a value by what its key measures.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

MAX_CELL = 300


def fmt(v: Any) -> str:
    """One cell's plain text: floats to 3 significant digits, containers as compact JSON, everything truncated."""
    if v is None:
        text = "-"
    elif isinstance(v, bool):
        text = "yes" if v else "no"
    elif isinstance(v, float):
        text = sig(v)
    elif isinstance(v, (int, str)):
        text = str(v)
    else:
        try:
            text = json.dumps(v, separators=(",", ":"), default=str)
        except (TypeError, ValueError, RecursionError):
            text = repr(v)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 3] + "..."


def sig(x: float, digits: int = 3) -> str:
    """``x`` to ``digits`` significant digits, without scientific notation for everyday magnitudes."""
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    mag = math.floor(math.log10(abs(x)))
    if mag >= digits - 1:
        return f"{round(x):,}" if mag < 9 else f"{x:.{digits - 1}e}"
    if mag < -4:
        return f"{x:.{digits - 1}e}"
    decimals = digits - 1 - mag
    return f"{x:.{decimals}f}"


def pct(frac: float | None) -> str:
    """A fraction in [0, 1] as a percentage: ``0.9222`` -> ``92.2 %``."""
    return "-" if frac is None else f"{sig(100 * frac)} %"


def pct_points(p: float | None) -> str:
    """A value already in percent: ``92.22`` -> ``92.2 %``."""
    return "-" if p is None else f"{sig(p)} %"


def ms(x: float | None) -> str:
    return "-" if x is None else f"{sig(x)} ms"


def mb(x: float | None) -> str:
    return "-" if x is None else f"{sig(x)} MB"


def points(x: float | None) -> str:
    """An accuracy difference in percentage points."""
    return "-" if x is None else f"{sig(x)} pt"


def count(n: float | None) -> str:
    """Large counts with a unit prefix: ``299501952`` -> ``300 M``."""
    if n is None:
        return "-"
    for step, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= step:
            return f"{sig(n / step)} {unit}"
    return sig(float(n)) if isinstance(n, float) else str(n)


def seconds(x: float | None) -> str:
    return "-" if x is None else f"{sig(x)} s"


LABELS: dict[str, str] = {
    "name": "Artefact", "artefact": "Artefact", "path": "File", "model": "Model", "format": "Format",
    "quantization": "Quantisation", "quantize": "Quantisation", "runtime": "Runtime", "threads": "Threads",
    "batch": "Batch", "status": "Status", "error": "Error", "size_mb": "Size", "MiB": "Size (MiB)",
    "params": "Parameters", "macs": "MACs per image", "load_ms": "Load time", "first_ms": "First inference",
    "latency.p50": "Latency p50", "latency.p90": "Latency p90", "latency.p99": "Latency p99",
    "latency.mean": "Latency mean", "throughput": "Throughput (images/s)", "gflops": "GFLOP/s",
    "peak_pct": "Share of peak", "peak_rss_mb": "Peak memory", "top1": "Top-1 accuracy", "top5": "Top-5 accuracy",
    "agreement": "Top-1 agreement", "n_eval": "Images evaluated", "n": "Images", "accuracy": "Accuracy",
    "reference_accuracy": "Reference accuracy", "drop": "Accuracy drop", "max_dlogit": "Largest logit change",
    "saturated": "Saturated outputs", "kl": "KL divergence", "max_dprob": "Largest probability change",
    "ece": "Calibration error (ECE)", "ece_reference": "Reference ECE",
    "ece_delta_ci": "ECE change, 95 % interval", "passed": "Parity passed",
    "failures": "Failures", "variant": "Variant", "agreement_ci": "Agreement, 95 % interval",
    "resolution": "One image moves accuracy by", "precision": "Computed in", "parity_failed": "Parity failed",
    "attack": "Attack", "eps": "Budget (eps)", "kind": "Kind",
    "n_images": "Images", "n_attacked": "Images attacked", "clean_accuracy": "Clean accuracy",
    "robust_accuracy": "Robust accuracy", "success_rate": "Attack success", "median_queries": "Median queries",
    "mean_linf": "Mean L-inf", "mean_l2": "Mean L2", "max_linf": "Largest L-inf", "target_class": "Target class",
    "crafted_on": "Crafted on", "epoch": "Epoch", "train_loss": "Training loss", "train_acc": "Training accuracy",
    "val_loss": "Validation loss", "val_acc": "Validation accuracy", "lr": "Learning rate",
    "seconds": "Time", "images_per_s": "Images/s", "train_images": "Training images", "class": "Class",
    "images": "Images", "correct": "Correct", "test_accuracy": "Test accuracy", "val_accuracy": "Validation accuracy",
    "best_epoch": "Best epoch", "epochs_run": "Epochs run", "stopped_early": "Stopped early",
    "test_images": "Test images", "train_seconds": "Training time", "mode": "Mode", "backbone": "Backbone",
    "weights": "Weights", "classes": "Classes", "created": "Created", "source_sha256": "Checkpoint SHA-256",
    "manifest": "Split manifest", "run_dir": "Run folder", "size": "Input size (px)", "resize": "Resize (px)",
    "mean": "Mean", "std": "Std", "interpolation": "Interpolation", "layout": "Layout", "dtype": "Data type",
    "scale": "Scale", "zero_point": "Zero point", "worst_case": "Worst case", "loop": "Timing loop",
    "noise": "Noise warnings", "affinity": "CPU affinity", "wall_s": "Wall time", "feature_images_per_s":
    "Feature extraction (images/s)", "feature_cache_hits": "Feature cache hits",
    "feature_cache_misses": "Feature cache misses",
}


def label(key: str) -> str:
    """Words for a JSON key: ``per_class_test_accuracy.circle`` -> ``Per class test accuracy: circle``."""
    if key in LABELS:
        return LABELS[key]
    head, _, tail = key.rpartition(".")
    if head and tail == "value":
        return label(head)
    if head and tail in ("lo", "hi"):
        return f"{label(head)} ({'low' if tail == 'lo' else 'high'})"
    if head and tail in LABELS:
        return f"{label(head)}: {LABELS[tail].lower()}"
    if head:
        return f"{label(head)}: {tail.replace('_', ' ')}"
    words = re.sub(r"_+", " ", key).strip()
    return words[:1].upper() + words[1:] if words else key


_FRACTION = re.compile(r"(^|[._])(accuracy|acc|agreement|saturated|success_rate|ece|ece_reference|"
                       r"val_frac|test_frac|share)(\.|$)")
_PERCENT = re.compile(r"(^|[._])(top1|top5|peak_pct|pct)$")
_MS = re.compile(r"(_ms$|^latency\.|(^|\.)p\d\d$|(^|\.)mean_ms$)")


def _unit_for(key: str) -> Callable[[float], str] | None:
    leaf = key.rsplit(".", 1)[-1]
    if _PERCENT.search(key):
        return pct_points
    if _FRACTION.search(key):
        return pct
    if leaf in ("drop", "resolution") or leaf.endswith("_drop"):
        return points
    if _MS.search(key):
        return ms
    if leaf.endswith("_mb") or leaf == "MiB":
        return mb if leaf.endswith("_mb") else lambda x: f"{sig(x)} MiB"
    if leaf in ("macs", "params", "flops"):
        return count
    if leaf in ("seconds", "wall_s", "train_seconds") or (leaf.endswith("_s") and not leaf.endswith("per_s")):
        return seconds
    return None


def eps(x: float) -> str:
    """An L-inf budget on pixels in [0, 1], as the 8-bit steps people quote: ``0.0157`` -> ``4/255`` (budgets above
    64/255, such as L2 radii, stay plain numbers)."""
    steps = x * 255
    return f"{round(steps)}/255" if 0 < steps <= 64 and abs(steps - round(steps)) < 0.02 else sig(x)


def value(key: str, v: Any) -> str:
    """A value as a person reads it, by what its key measures (fractions as %, times in ms, 3 digits)."""
    if isinstance(v, bool) or v is None:
        return fmt(v)
    if key.rsplit(".", 1)[-1] == "eps" and isinstance(v, (int, float)):
        return eps(float(v))
    if isinstance(v, (int, float)):
        unit = _unit_for(key)
        if unit is not None and math.isfinite(float(v)):
            return unit(v)
        if isinstance(v, float):
            return sig(v)
        return f"{v:,}" if abs(v) >= 10_000 else str(v)
    if isinstance(v, (list, dict)) and not v:
        return "-"
    if key.endswith("_ci") and isinstance(v, list) and len(v) == 2 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
        lo, hi = (value(key[:-3], x) for x in v)
        return f"{lo} to {hi}"
    if isinstance(v, list) and v and all(isinstance(x, str) for x in v):
        return fmt("; ".join(v))
    return fmt(v)
