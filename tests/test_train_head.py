"""The features-mode head: L-BFGS multinomial logistic regression equals scikit-learn's on the same features;
cross-validation picks L2 deterministically, folds are stratified, the standardisation folds back exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edge_tl.train.head import fit_logistic, fold_into_raw, load_into, probe, select_head, stratified_folds


def _blobs(n: int = 240, d: int = 24, c: int = 4, noise: float = 2.5, seed: int = 0):
    centres = np.random.default_rng(100).normal(0, 1, (c, d))  # the same classes for every sample seed
    rng = np.random.default_rng(seed)
    y = np.arange(n) % c
    return centres[y] + rng.normal(0, noise, (n, d)), y


@pytest.mark.parametrize("l2,d", [(1e-3, 24), (1e-1, 24), (1e-2, 400)])  # d > n: solved in x's row space
def test_fit_matches_sklearn_logistic_regression(l2: float, d: int) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = _blobs(d=d)
    ours = fit_logistic(x, y, 4, l2, tol=1e-8)
    ref = LogisticRegression(C=1.0 / (l2 * len(y)), tol=1e-10, max_iter=10_000).fit(x, y)
    assert ours.grad_norm < 1e-6
    scale = np.abs(ref.coef_).max()
    assert np.abs(ours.weight - ref.coef_).max() < 1e-4 * scale
    assert np.abs(ours.bias - ref.intercept_).max() < 1e-3 * max(1.0, np.abs(ref.intercept_).max())
    xt, yt = _blobs(d=d, seed=1)
    assert (ours.logits(xt).argmax(1) == ref.predict(xt)).mean() == 1.0
    assert (ours.logits(xt).argmax(1) == yt).mean() == pytest.approx(ref.score(xt, yt))


def test_binary_problem_and_warm_start() -> None:
    x, y = _blobs(c=2)
    cold = fit_logistic(x, y, 2, 1e-2, tol=1e-8)
    warm = fit_logistic(x, y, 2, 1e-2, init=(cold.weight * 0.9, cold.bias), tol=1e-8)
    assert np.abs(cold.weight - warm.weight).max() < 1e-5 and warm.iterations <= cold.iterations


def test_stratified_folds() -> None:
    y = np.array([0] * 10 + [1] * 7 + [2] * 3)
    f = stratified_folds(y, 3, seed=0)
    for c in range(3):
        counts = np.bincount(f[y == c], minlength=3)
        assert counts.max() - counts.min() <= 1
    assert np.array_equal(f, stratified_folds(y, 3, seed=0))
    assert not np.array_equal(f, stratified_folds(y, 3, seed=1))


def test_select_head_is_deterministic_and_picks_the_best_cv_score() -> None:
    x, y = _blobs(n=120, d=40, noise=3.0)
    grid = (1e-3, 1e-2, 1e-1, 1.0)
    a = select_head(x, y, 4, folds=3, seed=0, grid=grid, score="log_loss")
    b = select_head(x, y, 4, folds=3, seed=0, grid=grid, score="log_loss")
    assert a.fit.l2 == b.fit.l2 and np.array_equal(a.fit.weight, b.fit.weight)
    assert a.folds == 3 and [r["l2"] for r in a.path] == list(grid)
    assert a.best["cv_loss"] == min(r["cv_loss"] for r in a.path)
    acc = select_head(x, y, 4, folds=3, seed=0, grid=grid)
    assert acc.score == "accuracy" and acc.best["cv_acc"] == max(r["cv_acc"] for r in acc.path)
    # the refit is the plain fit on every row at the chosen l2
    ref = fit_logistic(x, y, 4, a.fit.l2)
    assert np.abs(ref.weight - a.fit.weight).max() < 1e-9


def test_augmented_views_stay_with_their_image() -> None:
    """(N, V, D) input: views are training rows; a class too small to hold out falls back to a stated l2."""
    x, y = _blobs(n=60, d=8)
    views = np.stack([x, x + 0.01], 1)
    sel = select_head(views, y, 4, folds=3, seed=0, grid=(1e-2, 1e-1))
    assert sel.folds == 3 and sel.fit.accuracy > 0.5
    tiny = select_head(x[:5], np.array([0, 0, 1, 1, 2]), 3, folds=3, grid=(1e-2, 1e-1))
    assert tiny.folds == 0 and "fewer than 2 images" in tiny.chosen_by and not tiny.path


def test_probe_folds_standardisation_into_the_raw_head() -> None:
    x, y = _blobs(n=80, d=10)
    x = x * np.linspace(0.1, 50, 10) + 7.0  # badly scaled raw features
    sel, w, b = probe(x[:, None], y, 4, seed=0)
    linear = torch.nn.Linear(10, 4)
    load_into(linear, w, b)
    with torch.no_grad():
        raw = linear(torch.from_numpy(x).float()).double().numpy()
    from edge_tl.train.head import standardiser

    mu, sd = standardiser(x)
    assert np.allclose(raw, sel.fit.logits((x - mu) / sd), atol=1e-3)
    w2, b2 = fold_into_raw(sel.fit, mu, sd)
    assert np.allclose(w, w2) and np.allclose(b, b2)


def test_tiny_data_gets_fewer_folds_and_a_coarser_grid() -> None:
    from edge_tl.train.head import L2_GRID, TINY_IMAGES, cv_plan

    assert cv_plan(np.arange(4 * TINY_IMAGES) % 4, 4) == (5, L2_GRID)  # enough data: the full plan
    assert cv_plan(np.array([0] * 300 + [1] * 2), 2)[0] == 2  # folds never exceed the smallest class
    k, grid = cv_plan(np.arange(60) % 4, 4)
    assert k == 3 and grid == L2_GRID[::2] and len(grid) == 6
    assert cv_plan(np.arange(60) % 4, 4, grid=(1e-2, 1e-1)) == (3, (1e-2, 1e-1))  # a short grid is kept
    x, y = _blobs(n=60, d=8)
    sel = select_head(x, y, 4)
    assert sel.folds == 3 and [r["l2"] for r in sel.path] == list(L2_GRID[::2])


def test_selection_in_one_row_space_basis_is_exact() -> None:
    """More dimensions than images: every fit of the selection runs in one shared row-space basis, and the
    refit is the plain full-dimensional fit at the chosen l2."""
    x, y = _blobs(n=120, d=300)
    sel = select_head(x, y, 4, folds=3, grid=(1e-1, 1.0))  # penalties strong enough for a well-defined optimum
    ref = fit_logistic(x, y, 4, sel.fit.l2, row_space=False, tol=1e-8)
    assert sel.fit.weight.shape == (4, 300)
    assert np.abs(sel.fit.weight - ref.weight).max() < 1e-3 * np.abs(ref.weight).max()
    xt, _ = _blobs(n=120, d=300, seed=1)
    za, zb = sel.fit.logits(xt), ref.logits(xt)
    assert np.abs(za - zb).max() < 1e-2 * np.abs(zb).max() and (za.argmax(1) == zb.argmax(1)).all()
