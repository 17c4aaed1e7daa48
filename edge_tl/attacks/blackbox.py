"""Black-box attacks straight at an artefact: they only call its predict function (pixels -> logits), so they
work on ONNX Runtime, LiteRT, int8 or float, exactly as shipped.

* ``square``: the score-based Square attack (Andriushchenko et al. 2020). Our own implementation because
  none of the libraries fits a deployed artefact: torchattacks' needs a torch model, and ART's does not report
  per-image queries. It works on the 8-bit grid (every query is a real uint8 image), batches every still-robust
  image into one model call per iteration and counts queries per image. Tested against torchattacks' Square.
  The L2 variant is a Square-style random search: square windows of random sign per channel, the whole change
  rescaled onto the L2 sphere of radius eps, kept when the margin drops.
* ``hopskipjump`` lives in :mod:`~edge_tl.attacks.hsj` (own, batched across images). :func:`art_hopskipjump`
  runs ART's, one image at a time, as the reference it is tested against: a ``BlackBoxClassifier`` whose predict
  function counts queries, stops at the budget and remembers the closest adversarial it has seen.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edge_tl.attacks.pixels import Predict, eps_levels
from edge_tl.attacks.registry import AttackSettings, Crafted, register_attack
from edge_tl.runtimes import run_batched


def margin(logits: np.ndarray, labels: np.ndarray, targeted: bool) -> np.ndarray:
    """Square's margin loss: negative once the image is adversarial.

    Untargeted: ``z_y - max_{j != y} z_j``; targeted (labels = targets): ``max_{j != t} z_j - z_t``.
    """
    z = logits.astype(np.float64)
    idx = np.arange(len(z))
    own = z[idx, labels]
    other = z.copy()
    other[idx, labels] = -np.inf
    best_other = other.max(axis=1)
    return best_other - own if targeted else own - best_other


def p_selection(p_init: float, it: int, n_iters: int) -> float:
    """Square's schedule of the fraction of pixels changed per step (the original's, rescaled to n_iters)."""
    it = int(it / n_iters * 10000)
    for bound, div in ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64), (6000, 128),
                       (8000, 256)):
        if it <= bound:
            return p_init / div
    return p_init / 512


def image_streams(seed: int, ids: np.ndarray) -> list[np.random.Generator]:
    """One random generator per image, keyed by ``(seed, image id)``: an image's random draws do not depend on
    which other images share its batch, so attacking a subset gives each image the same search as the full
    set (stopping an image early changes no other image's result)."""
    return [np.random.default_rng((int(seed), int(i))) for i in ids]


@register_attack("square", "blackbox", norms=("linf", "l2"),
                 description="Square attack (score-based), own batched implementation.")
def square(predict: Predict, x: np.ndarray, y: np.ndarray, eps: float, settings: AttackSettings,
           target: np.ndarray | None = None, p_init: float = 0.05,
           progress: Callable[[int, float], None] | None = None, ids: np.ndarray | None = None) -> Crafted:
    """Square attack on uint8 images ``x`` with at most ``settings.queries`` queries per image.

    L-inf perturbations are whole grey levels (``floor(eps * 255)`` of them); L2 ones are rounded inside the
    ball. What is queried is what is judged. An image stops being queried once it is adversarial (success is
    final); the still-active images of an iteration go to the model together, ``settings.batch_size`` rows per
    call. ``ids`` (default ``0..n-1``) key each image's own random stream (:func:`image_streams`).
    """
    n, h, w, c = x.shape
    labels = np.asarray(target if target is not None else y, np.int64)
    targeted = target is not None
    queries = np.zeros(n, np.int64)
    l2 = settings.norm == "l2"
    k = eps * 255.0 if l2 else eps_levels(eps)
    if n == 0 or k == 0:
        return Crafted(x.copy(), queries)
    streams = image_streams(settings.seed, np.arange(n) if ids is None else np.asarray(ids))
    pm = np.array([-1, 1], np.int16)
    stripes = np.stack([g.choice(pm, size=(1, w, c)) for g in streams])
    # per image and iteration: window row, window column, one sign per channel
    draws = np.stack([g.random((settings.queries, 2 + c), dtype=np.float32) for g in streams])
    xi = x.astype(np.int16)
    delta = _on_sphere(np.broadcast_to(stripes, x.shape).astype(np.float32), k) if l2 else \
        np.broadcast_to(k * stripes, x.shape).astype(np.int16)
    apply = (lambda xs, d: _apply_l2(xs, d, k)) if l2 else _apply
    loss = margin(run_batched(predict, apply(xi, delta), settings.batch_size), labels, targeted)
    queries += 1
    share = np.float32(2.0 * k / np.sqrt(h * w * c))
    for it in range(1, settings.queries):
        active = np.flatnonzero(loss >= 0)
        if active.size == 0:
            break
        s = int(np.clip(round(np.sqrt(p_selection(p_init, it, settings.queries) * h * w)), 1, max(min(h, w) - 1, 1)))
        u = draws[active, it]
        rows = np.minimum((u[:, 0] * (h - s + 1)).astype(np.int64), h - s)
        cols = np.minimum((u[:, 1] * (w - s + 1)).astype(np.int64), w - s)
        signs = np.where(u[:, 2:] < 0.5, pm[0], pm[1]).reshape(-1, 1, 1, c)
        d_new = delta[active]
        value = signs * share if l2 else (k * signs).astype(np.int16)
        for j, (r, col) in enumerate(zip(rows, cols)):
            d_new[j, r:r + s, col:col + s, :] = value[j]
        if l2:  # the window gets a share of the budget a few times its area's, then all is rescaled to the sphere
            d_new = _on_sphere(d_new, k)
        l_new = margin(run_batched(predict, apply(xi[active], d_new), settings.batch_size), labels[active], targeted)
        queries[active] += 1
        better = l_new < loss[active]
        loss[active[better]] = l_new[better]
        delta[active[better]] = d_new[better]
        if progress is not None and it % 10 == 0:
            progress(n - active.size, float(queries.sum()) / (n * settings.queries))
    return Crafted(apply(xi, delta), queries)


def _apply(xi: np.ndarray, delta: np.ndarray) -> np.ndarray:
    return np.clip(xi + delta, 0, 255).astype(np.uint8)


def _on_sphere(delta: np.ndarray, radius: float) -> np.ndarray:
    norms = np.sqrt((delta.astype(np.float32).reshape(len(delta), -1) ** 2).sum(axis=1))
    return (delta * (radius / np.maximum(norms, 1e-12)).reshape(-1, 1, 1, 1)).astype(np.float32)


def _apply_l2(xi: np.ndarray, delta: np.ndarray, radius: float) -> np.ndarray:
    from edge_tl.attacks.pixels import quantize_adversarial

    x = xi.astype(np.uint8)
    return quantize_adversarial(x, np.clip(xi + delta, 0, 255).astype(np.float32) / 255.0, radius / 255.0, "l2")


class BudgetSpent(Exception):
    """Raised inside ART's attack loop when an image has used its query budget."""


class QueryOracle:
    """Predict function for ART: quantises each query to uint8 (unless ``quantize`` is False: float [0, 1]
    queries, the best kept as float), counts queries, enforces the budget, and keeps the adversarial closest
    (L-inf) to ``x0`` among everything it was asked about."""

    def __init__(self, predict: Predict, x0: np.ndarray, label: int, targeted: bool, budget: int,
                 quantize: bool = True) -> None:
        self.predict, self.x0, self.label, self.targeted, self.budget = predict, x0, label, targeted, budget
        self.quantize = quantize
        self.count = 0
        self.best: np.ndarray | None = None
        self.best_linf = np.inf

    def __call__(self, xb: np.ndarray) -> np.ndarray:
        if self.count + len(xb) > self.budget:
            raise BudgetSpent
        xf = np.clip(np.asarray(xb, np.float32), 0.0, 1.0)
        xq = np.rint(xf * 255.0).astype(np.uint8) if self.quantize else xf
        logits = np.asarray(self.predict(xq), np.float32)
        self.count += len(xb)
        pred = logits.argmax(axis=1)
        hit = np.flatnonzero(pred == self.label if self.targeted else pred != self.label)
        if hit.size:
            d = np.abs(xf[hit] * 255.0 - self.x0.astype(np.float32)).reshape(hit.size, -1).max(axis=1)
            j = int(d.argmin())
            if d[j] < self.best_linf:
                self.best_linf, self.best = float(d[j]), xq[hit[j]].copy()
        return logits


def art_hopskipjump(predict: Predict, x: np.ndarray, y: np.ndarray, eps: float | None, settings: AttackSettings,
                    target: np.ndarray | None = None, init_images: np.ndarray | None = None,
                    progress: Callable[[int], None] | None = None, quantize: bool = True) -> Crafted:
    """ART's HopSkipJump (L-inf), the reference for :mod:`~edge_tl.attacks.hsj`: minimum-L-inf adversarials
    within ``settings.queries`` queries per image, one image at a time (each of its gradient estimates batched
    into model calls). ``init_images[i]`` (uint8), an image already classified as wanted, seeds the search of
    image ``i``; images with no adversarial found are returned unchanged."""
    from art.attacks.evasion import HopSkipJump
    from art.estimators.classification import BlackBoxClassifier

    n, h, w, c = x.shape
    nb = int(np.asarray(predict(x[:1]), np.float32).shape[1]) if n else 0
    adv, queries = (x.copy() if quantize else x.astype(np.float32) / 255.0), np.zeros(n, np.int64)
    budget = settings.queries
    np.random.seed(settings.seed)  # ART draws from numpy's global generator
    for i in range(n):
        label = int(target[i] if target is not None else y[i])
        oracle = QueryOracle(predict, x[i], label, target is not None, budget, quantize)
        clf = BlackBoxClassifier(oracle, (h, w, c), nb, clip_values=(0.0, 1.0))
        atk = HopSkipJump(clf, batch_size=settings.batch_size, targeted=target is not None, norm=np.inf,
                          max_iter=10_000, max_eval=max(budget // 4, 10), init_eval=max(min(100, budget // 10), 5),
                          init_size=max(min(100, budget // 10), 5), verbose=False)
        kwargs = {}
        if init_images is not None:
            kwargs["x_adv_init"] = init_images[i:i + 1].astype(np.float32) / 255.0
        try:
            atk.generate(x[i:i + 1].astype(np.float32) / 255.0, y=np.eye(nb, dtype=np.float32)[[label]], **kwargs)
        except BudgetSpent:
            pass
        if oracle.best is not None:
            adv[i] = oracle.best
        queries[i] = oracle.count
        if progress is not None:
            progress(1)
    return Crafted(adv, queries)
