"""Parity: does an artefact behave like the PyTorch model it came from? Top-1, logits *and* probabilities.

:func:`check_parity` runs a runtime and the reference on the same held-out pixels and measures top-1
agreement, accuracy and its drop, max |Δlogit|, the fraction of saturated integer outputs (values at the
int8/uint8 limits, read via ``runtime.raw``), the mean KL divergence and max |Δprob| of the softmax, and the
expected calibration error (15 bins) of both. It never raises on bad numbers; :func:`gate` does, with a
:class:`~edge_tl.errors.ParityError` carrying the rows. Limits come from :func:`limits_for` (per format and
quantisation) and are options.

:func:`fidelity_set` picks the images both the parity gate and the accuracy budget judge int8 on: every image of
the run (train, val and test) that quantisation did not calibrate on, plus horizontally flipped views when there
are fewer than :data:`MIN_FIDELITY_VIEWS`. Top-1 agreement and KL against the float model need no labels, so the
train images measure them as well as the held-out ones. One rule, :func:`drop_limit`, turns ``--max-drop`` into
what these images can resolve (one image is ``100 / n`` points), and every result reports its count, that
resolution and a 95 % interval for the agreement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from edge_tl.errors import DataError, ParityError
from edge_tl.records import ParityLimits, ParityResult
from edge_tl.runtimes.base import Runtime, softmax

ECE_BINS = 15
ECE_RESAMPLES = 1000  # paired bootstrap resamples behind the interval of an ECE difference
MIN_FIDELITY_VIEWS = 300  # fewer images than this: add each image's mirror view as a second view
MAX_FIDELITY_IMAGES = 4000  # more than this: a seeded sample (decoded 224 px images take 150 kB each)
Z95 = 1.959964
# max |Δlogit| allowed for float variants, per (format, quantize); int8 variants are judged on agreement/drop.
FLOAT_ATOL: dict[tuple[str, str], float] = {
    ("onnx", "none"): 1e-3, ("tflite", "none"): 1e-3, ("pytorch", "none"): 1e-5,
    ("onnx", "fp16"): 5e-2, ("tflite", "fp16"): 5e-2,
    ("openvino", "bf16"): 0.25,  # computed in bf16 (8-bit mantissa): logits move by ~1e-2 relative
}


def limits_for(format: str, quantize: str, *, max_drop: float = 1.0, max_saturated: float = 0.001,
               max_ece_delta: float = 1.0, min_int8_agreement: float = 0.98) -> ParityLimits:
    """Default limits: float variants 100 % agreement + |Δlogit| tolerance; quantised ones >= 98 % and drop."""
    if quantize in ("none", "fp16", "bf16"):
        atol = FLOAT_ATOL.get((format, quantize), 1e-3 if quantize == "none" else 5e-2)
        return ParityLimits(max_dlogit=atol, min_agreement=1.0, max_drop=None, max_saturated=max_saturated,
                            max_ece_delta=max_ece_delta)
    return ParityLimits(max_dlogit=None, min_agreement=min_int8_agreement, max_drop=max_drop,
                        max_saturated=max_saturated, max_ece_delta=max_ece_delta, ignore_ties=False)


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``k / n`` (95 % by default)."""
    if n <= 0:
        return (0.0, 1.0)
    p = k / n
    den = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, float(centre - half)), min(1.0, float(centre + half)))


def drop_limit(max_drop: float, n: int) -> float:
    """``--max-drop`` as ``n`` images can resolve it: never finer than one image (``100 / n`` points).

    A budget below one image's worth cannot be told apart from "no image lost", so it is judged as one image.
    """
    return max(float(max_drop), 100.0 / n) if n > 0 else float(max_drop)


@dataclass(frozen=True)
class FidelitySet:
    """The images int8 is judged on (uint8 NHWC ``pixels`` and ``labels``) and what they are."""

    pixels: np.ndarray
    labels: np.ndarray
    description: str
    unique: int  # distinct images (``len(pixels)`` counts mirrored views too)


def fidelity_set(manifest: Any, spec: Any, exclude: Sequence[Any] = (), min_views: int = MIN_FIDELITY_VIEWS,
                 max_images: int = MAX_FIDELITY_IMAGES) -> FidelitySet:
    """Every image of ``manifest`` (train, val, test) except ``exclude`` (the calibration files), decoded with
    ``spec``; mirrored views are added when there are fewer than ``min_views`` images, and a seeded sample of
    ``max_images`` is taken when there are more."""
    from edge_tl.data.preprocess import load_batch

    skip = {str(p) for p in exclude}
    files: list[Any] = []
    labels: list[int] = []
    used = []
    for split in ("train", "val", "test"):
        pairs = [(f, y) for f, y in zip(manifest.files(split), manifest.labels(split)) if str(f) not in skip]
        if pairs:
            used.append(split)
        files += [f for f, _ in pairs]
        labels += [int(y) for _, y in pairs]
    if not files:
        raise DataError("the run has no images left to judge int8 on (all were used for calibration)",
                        "lower --calib-size, or use a dataset with more images")
    what = "+".join(used) + (f" without {len(skip)} calibration images" if skip else "")
    if len(files) > max_images:
        keep = np.sort(np.random.default_rng(0).permutation(len(files))[:max_images])
        files, labels = [files[i] for i in keep], [labels[i] for i in keep]
        what += f", a seeded sample of {max_images}"
    pixels = load_batch(files, spec)
    y = np.asarray(labels)
    if len(files) < min_views:
        pixels, y = np.concatenate([pixels, pixels[:, :, ::-1]]), np.concatenate([y, y])
        what += ", each also mirrored"
    return FidelitySet(np.ascontiguousarray(pixels), y, what, len(files))


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error: sum over confidence bins of |accuracy - confidence| weighted by bin share."""
    idx, terms = _ece_terms(probs, np.asarray(labels), bins)
    return float(np.abs(np.bincount(idx, terms, bins)).sum() / len(terms))


def _ece_terms(probs: np.ndarray, labels: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's confidence bin and its (correct - confidence): ECE = sum over bins of |sum of terms| / n."""
    conf = probs.max(axis=1).astype(np.float64)
    idx = np.clip(np.digitize(conf, np.linspace(0.0, 1.0, bins + 1)[1:-1], right=True), 0, bins - 1)
    return idx, (probs.argmax(axis=1) == labels) - conf


def ece_delta_interval(probs: np.ndarray, ref_probs: np.ndarray, labels: np.ndarray, *, bins: int = ECE_BINS,
                       resamples: int = ECE_RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """95 % paired-bootstrap interval of ``ece(probs) - ece(ref_probs)`` (same images resampled for both).

    ECE on a few hundred images moves by a point when a handful of confident answers change, so a difference is
    only called real when this interval excludes zero. Seeded: the same inputs give the same interval.
    """
    labels = np.asarray(labels)
    n = len(labels)
    (i_a, t_a), (i_b, t_b) = _ece_terms(probs, labels, bins), _ece_terms(ref_probs, labels, bins)
    rng = np.random.default_rng(seed)
    deltas = np.empty(resamples)
    for r in range(resamples):
        s = rng.integers(0, n, n)
        deltas[r] = (np.abs(np.bincount(i_a[s], t_a[s], bins)).sum()
                     - np.abs(np.bincount(i_b[s], t_b[s], bins)).sum()) / n
    lo, hi = np.percentile(deltas, [2.5, 97.5])
    return float(lo), float(hi)


def saturation(raw: np.ndarray) -> float:
    """Fraction of an integer output at its dtype's limits (0.0 for float outputs)."""
    raw = np.asarray(raw)
    if raw.size == 0 or not np.issubdtype(raw.dtype, np.integer):
        return 0.0
    info = np.iinfo(raw.dtype)
    return float(np.mean((raw == info.min) | (raw == info.max)))


def kl_divergence(p_ref: np.ndarray, p: np.ndarray, eps: float = 1e-12) -> float:
    """Mean over samples of KL(p_ref || p)."""
    a, b = p_ref.astype(np.float64) + eps, p.astype(np.float64) + eps
    return max(0.0, float(np.mean(np.sum(a * (np.log(a) - np.log(b)), axis=1))))  # >= 0 up to rounding


def check_parity(runtime: Runtime, reference: Runtime | np.ndarray, pixels: np.ndarray,
                 labels: Sequence[int] | np.ndarray | None, limits: ParityLimits, *,
                 variant: str | None = None, format: str | None = None, quantize: str | None = None,
                 images: str = "") -> ParityResult:
    """Compare ``runtime`` with ``reference`` (a runtime, or its precomputed logits) on ``pixels``.

    ``labels`` (optional) enable accuracy, drop and ECE. Returns a :class:`ParityResult`; never raises on
    failing numbers (see :func:`gate`).
    """
    if len(pixels) == 0:
        raise DataError("parity needs at least one held-out image", "use a dataset with a test split")
    ref = np.asarray(reference if isinstance(reference, np.ndarray) else reference(pixels), dtype=np.float32)
    raw, out = runtime.outputs(pixels)  # one inference: the stored tensor (saturation) and the logits
    out = np.asarray(out, dtype=np.float32)
    if out.shape != ref.shape:
        raise DataError(f"artefact gives logits {out.shape}, reference {ref.shape}", "re-export the model")
    p_ref, p = softmax(ref), softmax(out)
    top_ref, top = ref.argmax(1), out.argmax(1)
    dlogit = float(np.abs(out - ref).max())
    acc = acc_ref = drop = e = e_ref = e_ci = None
    if labels is not None:
        y = np.asarray(labels)
        acc, acc_ref = float((top == y).mean()), float((top_ref == y).mean())
        drop = 100.0 * (acc_ref - acc)
        e, e_ref = ece(p, y), ece(p_ref, y)
        if _ece_beyond_limit(limits, len(y), e, e_ref):
            e_ci = ece_delta_interval(p, p_ref, y)
    card = getattr(runtime, "card", None)
    fmt = format or (card.format if card is not None else "unknown")
    q = quantize or _quantize_of(card)
    res = ParityResult(
        variant=variant or str(getattr(getattr(runtime, "path", None), "name", runtime)), format=fmt, quantize=q,
        n=len(ref), agreement=float((top == top_ref).mean()), accuracy=acc, reference_accuracy=acc_ref,
        drop=drop, max_dlogit=dlogit, saturated=saturation(raw), kl=kl_divergence(p_ref, p),
        max_dprob=float(np.abs(p - p_ref).max()), ece=e, ece_reference=e_ref, ece_delta_ci=e_ci, limits=limits,
        agreement_ci=wilson_interval(int((top == top_ref).sum()), len(ref)), resolution=100.0 / len(ref),
        images=images, precision=getattr(runtime, "precision", None))
    return _judge(res, ref, top != top_ref)


def _ece_beyond_limit(lim: ParityLimits, n: int, e: float | None, e_ref: float | None) -> bool:
    """The ECE moved by more than ``--max-ece-delta`` on enough images to be gated (then its interval decides)."""
    return lim.max_ece_delta is not None and e is not None and e_ref is not None and n >= lim.min_ece_images \
        and 100 * abs(e - e_ref) > lim.max_ece_delta


def _quantize_of(card: Any) -> str:
    quant = getattr(card, "quantization", None)  # a QuantRecipe, or None for a float file
    return "none" if quant is None else str(quant.mode)


def _judge(r: ParityResult, ref: np.ndarray, flipped: np.ndarray) -> ParityResult:
    lim, fails = r.limits, []
    agreement = r.agreement
    if lim.ignore_ties and lim.max_dlogit is not None and flipped.any():
        top2 = np.sort(ref, axis=1)[:, -2:]
        ties = (top2[:, 1] - top2[:, 0]) <= 2 * lim.max_dlogit
        agreement = 1.0 - float((flipped & ~ties).mean())
    if agreement < lim.min_agreement:
        lo, hi = r.agreement_ci
        fails.append(f"agreement {100 * r.agreement:.2f} % (95 % CI {100 * lo:.1f}-{100 * hi:.1f}, {r.n} images) "
                     f"< {100 * lim.min_agreement:.2f} %")
    if lim.max_dlogit is not None and r.max_dlogit > lim.max_dlogit:
        fails.append(f"max |dlogit| {r.max_dlogit:.3g} > {lim.max_dlogit:.3g}")
    if lim.max_drop is not None and r.drop is not None and r.drop > drop_limit(lim.max_drop, r.n) + 1e-9:
        fails.append(f"accuracy drop {r.drop:.2f} pt > {drop_limit(lim.max_drop, r.n):.2f} pt "
                     f"(1 image = {r.resolution:.2f} pt of {r.n})")
    if r.saturated > lim.max_saturated:
        fails.append(f"saturated outputs {100 * r.saturated:.2f} % > {100 * lim.max_saturated:.2f} %")
    if _ece_beyond_limit(lim, r.n, r.ece, r.ece_reference) \
            and (r.ece_delta_ci is None or r.ece_delta_ci[0] > 0 or r.ece_delta_ci[1] < 0):
        ci = "" if r.ece_delta_ci is None else \
            f" (95 % CI {100 * r.ece_delta_ci[0]:+.2f} to {100 * r.ece_delta_ci[1]:+.2f}, {r.n} images)"
        fails.append(f"ECE {100 * r.ece:.2f} vs fp32 {100 * r.ece_reference:.2f} differs by more than "
                     f"{lim.max_ece_delta:.2f} pt{ci}")
    if lim.max_kl is not None and r.kl > lim.max_kl:
        fails.append(f"KL {r.kl:.3g} > {lim.max_kl:.3g}")
    if lim.max_dprob is not None and r.max_dprob > lim.max_dprob:
        fails.append(f"max |dprob| {r.max_dprob:.3g} > {lim.max_dprob:.3g}")
    return replace(r, failures=tuple(fails))


def gate(results: ParityResult | Sequence[ParityResult]) -> None:
    """Raise :class:`ParityError` (rows = every result as JSON) if any result failed its limits."""
    rs = [results] if isinstance(results, ParityResult) else list(results)
    bad = [r for r in rs if not r.passed]
    if bad:
        what = "; ".join(f"{r.variant}: {', '.join(r.failures)}" for r in bad)
        raise ParityError(f"parity failed: {what}", rows=[r.to_json() for r in rs],
                          hint="see the table; --max-drop and the limits are options, --no-verify skips")
