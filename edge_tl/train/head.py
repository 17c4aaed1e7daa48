"""The linear head on frozen features as the convex problem it is: multinomial logistic regression.

``fit_logistic`` minimises ``mean cross-entropy + l2 / 2 * ||W||^2`` (the bias is not penalised) to
convergence with full-batch L-BFGS in float64. That is scikit-learn's ``LogisticRegression(C=1 / (l2 * N))``
objective, solved by PyTorch so the core needs no scikit-learn. ``select_head`` picks ``l2`` from a grid by
stratified k-fold cross-validation (folds by image, so an image's augmented views never straddle train and
held-out rows; held-out rows are the plain centre-crop view), then refits on all rows. :func:`cv_plan` scales
folds and grid down for tiny data; with fewer rows than dimensions every fit runs in one shared row-space basis
(:func:`row_basis`, exact). Seeded, deterministic, seconds on a CPU.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

L2_GRID: tuple[float, ...] = tuple(float(10.0 ** e) for e in np.arange(-4.0, 1.51, 0.5))  # 1e-4 .. 3e1
FOLDS = 5
TINY_IMAGES = 100  # below this many images: at most TINY_FOLDS folds and every other grid value
TINY_FOLDS = 3
MAX_ITER = 1000
SCORES = ("log_loss", "accuracy")


@dataclass(frozen=True)
class LinearFit:
    """Weights ``(C, D)`` and bias ``(C,)`` of a fitted head, with the objective's state at the end."""

    weight: np.ndarray
    bias: np.ndarray
    l2: float
    loss: float  # mean cross-entropy on the rows it was fitted on (without the penalty)
    accuracy: float
    iterations: int
    grad_norm: float  # max |gradient| of the full objective at the solution: how converged it is

    def logits(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, np.float64) @ self.weight.T + self.bias


@dataclass(frozen=True)
class HeadSelection:
    """The refitted head plus how its ``l2`` was chosen (one row per grid value)."""

    fit: LinearFit
    folds: int
    score: str
    path: list[dict[str, float]] = field(default_factory=list)
    chosen_by: str = "cross-validation"
    seconds: float = 0.0

    @property
    def best(self) -> dict[str, float]:
        return next((r for r in self.path if r["l2"] == self.fit.l2), {})

    def metrics(self) -> dict[str, Any]:
        b = self.best
        return {"head_solver": "lbfgs", "head_l2": self.fit.l2, "head_l2_chosen_by": self.chosen_by,
                "head_cv_folds": self.folds, "head_cv_score": self.score,
                "head_cv_accuracy": b.get("cv_acc"), "head_cv_log_loss": b.get("cv_loss"),
                "head_iterations": self.fit.iterations, "head_grad_norm": self.fit.grad_norm,
                "head_fit_seconds": round(self.seconds, 3)}


def fit_logistic(x: np.ndarray, y: np.ndarray, n_classes: int, l2: float, *,
                 init: tuple[np.ndarray, np.ndarray] | None = None, max_iter: int = MAX_ITER,
                 tol: float | None = None, row_space: bool = True) -> LinearFit:
    """Minimise ``mean CE(x @ W.T + b, y) + l2 / 2 * ||W||^2`` over ``W, b`` with L-BFGS (float64).

    ``x`` is ``(N, D)``, ``y`` integer labels in ``[0, n_classes)``. ``init`` warm-starts from another solution
    (same shapes). With fewer rows than dimensions (and ``row_space``) it solves in the row space of ``x``
    (:func:`row_basis`). Stops when every gradient entry is below ``tol`` (default ``min(1e-5, 1e-2 * l2)``: a weak
    penalty has a flat objective, so its tolerance is tighter). Deterministic for the same inputs.
    """
    tol = min(1e-5, 1e-2 * l2) if tol is None else tol
    import torch
    import torch.nn.functional as F

    x = np.asarray(x, np.float64)
    basis = row_basis(x) if row_space else None
    if basis is not None:
        x = x @ basis
    xt = torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float64)
    yt = torch.as_tensor(np.asarray(y), dtype=torch.long)
    n, d = xt.shape
    w = torch.zeros(n_classes, d, dtype=torch.float64)
    b = torch.zeros(n_classes, dtype=torch.float64)
    if init is not None:
        w0 = np.asarray(init[0], np.float64)
        w.copy_(torch.as_tensor(w0 @ basis if basis is not None else w0))
        b.copy_(torch.as_tensor(init[1], dtype=torch.float64))
    w.requires_grad_(True)
    b.requires_grad_(True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, max_eval=2 * max_iter, tolerance_grad=tol,
                            tolerance_change=1e-14, history_size=20, line_search_fn="strong_wolfe")

    def objective() -> torch.Tensor:
        return F.cross_entropy(xt @ w.T + b, yt) + 0.5 * l2 * (w * w).sum()

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=False)
        loss = objective()
        loss.backward()
        return loss

    if n:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # small dense problems: thread wake-ups cost more than the maths
        try:
            opt.step(closure)
        finally:
            torch.set_num_threads(threads)
    opt.zero_grad(set_to_none=False)
    loss = objective()
    loss.backward()
    assert w.grad is not None and b.grad is not None
    grad = max(float(w.grad.abs().max()), float(b.grad.abs().max())) if n else 0.0
    with torch.no_grad():
        logits = xt @ w.T + b
        ce = float(F.cross_entropy(logits, yt)) if n else math.nan
        acc = float((logits.argmax(1) == yt).double().mean()) if n else math.nan
    iters = int(opt.state[opt._params[0]].get("n_iter", 0))
    weight = w.detach().numpy().copy()
    if basis is not None:
        weight = weight @ basis.T
    return LinearFit(weight, b.detach().numpy().copy(), float(l2), ce, acc, iters, grad)


def row_basis(x: np.ndarray) -> np.ndarray | None:
    """An orthonormal basis ``V`` ``(D, r)`` of the row space of ``x`` ``(N, D)`` when ``0 < N < D``, else ``None``.

    The L2-penalised solution ``W`` lies in the span of the rows it is fitted on (any other component only adds
    penalty), so fitting ``B`` on ``x @ V`` with the same penalty and taking ``W = B @ V.T`` is exact, in ``r``
    dimensions instead of ``D``. It holds for any subset of the rows too, so one basis serves every CV fold.
    """
    x = np.asarray(x, np.float64)
    if not 0 < x.shape[0] < x.shape[1]:
        return None
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return np.ascontiguousarray(vt.T)


def stratified_folds(y: Sequence[int], k: int, seed: int) -> np.ndarray:
    """Fold index ``0..k-1`` per sample: each class shuffled (seeded) and dealt round-robin, so every fold
    gets its share of every class."""
    y = np.asarray(y)
    fold = np.empty(len(y), np.int64)
    rng = np.random.default_rng(seed)
    offset = 0
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        fold[idx] = (np.arange(len(idx)) + offset) % k
        offset += len(idx)  # spread the classes' remainders over different folds
    return fold


def cv_plan(y: Sequence[int], n_classes: int, *, folds: int = FOLDS,
            grid: Sequence[float] = L2_GRID) -> tuple[int, tuple[float, ...]]:
    """The folds and ``l2`` values the selection uses, scaled to the data: ``(k, grid)`` (``k < 2``: no CV).

    ``k = min(folds, smallest class count)``, so every fold holds out every class. With fewer than
    :data:`TINY_IMAGES` images one held-out image is worth more than a point of accuracy, finer than the
    difference between neighbouring grid values, so a tiny set uses at most :data:`TINY_FOLDS` folds and every
    other grid value (decade steps instead of half decades; a grid of 6 values or fewer is kept as it is).
    """
    y = np.asarray(y, np.int64)
    values = tuple(sorted(float(g) for g in grid))
    if not len(y):
        return 0, values
    k = min(int(folds), int(np.bincount(y, minlength=n_classes)[np.unique(y)].min()))
    if len(y) < TINY_IMAGES:
        k = min(k, TINY_FOLDS)
        if len(values) > 6:
            values = values[::2]
    return k, values


def _rows(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All views of images ``idx`` as rows: ``(len(idx) * V, D)`` and their labels."""
    v = x.shape[1]
    return x[idx].reshape(len(idx) * v, -1), np.repeat(y[idx], v)


def _held_out(fit: LinearFit, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Summed cross-entropy and number correct of ``fit`` on ``(x, y)``."""
    z = fit.logits(x)
    z = z - z.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].sum()), float((z.argmax(1) == y).sum())


def select_head(x: np.ndarray, y: Sequence[int], n_classes: int, *, grid: Sequence[float] = L2_GRID,
                folds: int = FOLDS, seed: int = 0, score: str = "accuracy",
                progress: Callable[[int, int], None] | None = None) -> HeadSelection:
    """Choose ``l2`` by stratified k-fold CV on ``x`` ``(N, V, D)`` (V views per image, view 0 the plain one),
    then refit on every row with it. Folds and grid follow :func:`cv_plan` (fewer for tiny data).

    ``score`` ranks the grid: ``accuracy`` (held-out accuracy, ties broken by log loss; the default, since
    a strong penalty that flattens the probabilities often ranks classes best on few images per class) or
    ``log_loss`` (mean held-out cross-entropy). With fewer than 2 images in some class no fold can hold it out;
    the middle of the grid is used and ``chosen_by`` says so. ``progress(done, total)`` is called per fit.
    """
    from edge_tl.errors import check_choice

    check_choice("head score", score, SCORES)
    t0 = time.perf_counter()
    x = np.asarray(x, np.float64)
    if x.ndim == 2:
        x = x[:, None, :]
    y = np.asarray(y, np.int64)
    basis = row_basis(x.reshape(-1, x.shape[-1]))  # once for all fits (exact: see row_basis)
    if basis is not None:
        x = x @ basis
    k, values = cv_plan(y, n_classes, folds=folds, grid=grid)
    grid = list(values)[::-1]  # strong -> weak: each fit warm-starts the next
    total = (k if k >= 2 else 0) * len(grid) + 1
    done = 0
    path: list[dict[str, float]] = []
    if k >= 2:
        fold = stratified_folds(y, k, seed)
        sums = {g: [0.0, 0.0] for g in grid}
        for f in range(k):
            tr, te = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
            xtr, ytr = _rows(x, y, tr)
            init = None
            for g in grid:
                fit = fit_logistic(xtr, ytr, n_classes, g, init=init, row_space=False)
                init = (fit.weight, fit.bias)
                loss, correct = _held_out(fit, x[te, 0], y[te])
                sums[g][0] += loss
                sums[g][1] += correct
                done += 1
                if progress:
                    progress(done, total)
        path = [{"l2": g, "cv_loss": sums[g][0] / len(y), "cv_acc": sums[g][1] / len(y)} for g in grid[::-1]]
        key = ((lambda r: (r["cv_loss"], -r["l2"])) if score == "log_loss"
               else (lambda r: (-r["cv_acc"], r["cv_loss"], -r["l2"])))
        chosen, how = min(path, key=key)["l2"], f"{k}-fold cross-validation ({score})"
    else:
        chosen, how = grid[len(grid) // 2], "middle of the grid (a class has fewer than 2 images to cross-validate)"
    xall, yall = _rows(x, y, np.arange(len(y)))
    fit = fit_logistic(xall, yall, n_classes, chosen, row_space=False)
    if basis is not None:
        fit = replace(fit, weight=fit.weight @ basis.T)
    if progress:
        progress(total, total)
    return HeadSelection(fit, k if k >= 2 else 0, score, path, how, time.perf_counter() - t0)


def standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and (regularised) std of training features ``(N, D)``: the head is fitted on
    standardised features (well conditioned, one ``l2`` scale for any backbone); :func:`fold_into_raw` then makes
    it exact on raw ones."""
    x = np.asarray(x, np.float64)
    mu = x.mean(0)
    var = x.var(0)
    return mu, np.sqrt(var + 1e-2 * var.mean() + 1e-12)


def fold_into_raw(fit: LinearFit, mu: np.ndarray, sd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weights and bias that give on raw ``x`` what ``fit`` gives on ``(x - mu) / sd``."""
    w = fit.weight / sd
    return w, fit.bias - w @ mu


def load_into(linear: torch.nn.Linear, weight: np.ndarray, bias: np.ndarray) -> None:
    """Copy a fitted head into ``linear`` (its dtype and device kept)."""
    import torch

    with torch.no_grad():
        linear.weight.copy_(torch.as_tensor(weight, dtype=linear.weight.dtype))
        linear.bias.copy_(torch.as_tensor(bias, dtype=linear.bias.dtype))


def probe(feats: np.ndarray, labels: Sequence[int], n_classes: int, *, seed: int = 0, score: str = "accuracy",
          progress: Callable[[int, int], None] | None = None) -> tuple[HeadSelection, np.ndarray, np.ndarray]:
    """The whole linear probe on features ``(N, V, D)``: standardise on view 0, select ``l2`` by CV, refit; returns
    the selection and the head's weight and bias on raw features."""
    feats = np.asarray(feats, np.float64)
    mu, sd = standardiser(feats[:, 0])
    sel = select_head((feats - mu) / sd, labels, n_classes, seed=seed, score=score, progress=progress)
    w, b = fold_into_raw(sel.fit, mu, sd)
    return sel, w, b
