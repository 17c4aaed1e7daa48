"""Early stop (AutoAttack's standard evaluation) against the full run, per-image random streams, query counting,
and plots that leave matplotlib's global state alone. Tiny 32 px torch models, seconds each."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from edge_tl.attacks.engine import run_attacks  # noqa: E402
from edge_tl.attacks.registry import AttackSettings, get_attack  # noqa: E402
from helpers.attacks import CLASSES, Counting, make_data, one_thread, runtime, train_stripes  # noqa: E402, F401


@pytest.fixture(scope="module")
def trained() -> nn.Module:
    """The stripes model, trained to 100 % in ~2 s."""
    return train_stripes()


@pytest.mark.parametrize("name", ["square", "hopskipjump"])
def test_an_image_gets_the_same_search_alone_or_in_a_batch(trained, name) -> None:
    x, y = make_data(4, seed=3)
    settings = AttackSettings(queries=60, batch_size=5)
    kw = {"init_images": x[(np.arange(len(x)) + 4) % len(x)]} if name == "hopskipjump" else {}
    eps = None if name == "hopskipjump" else 6 / 255
    run = get_attack(name).run
    full = run(runtime(trained), x, y, eps, settings, None, **kw)
    sub = np.array([1, 5, 10])
    kw_sub = {"init_images": kw["init_images"][sub]} if kw else {}
    part = run(runtime(trained), x[sub], y[sub], eps, settings, None, ids=sub, **kw_sub)
    np.testing.assert_array_equal(part.adv, full.adv[sub])
    np.testing.assert_array_equal(part.queries, full.queries[sub])


def test_square_counts_exactly_the_rows_sent_and_stops_fooled_images(trained) -> None:
    x, y = make_data(4, seed=2)
    predict = Counting(runtime(trained))
    out = get_attack("square").run(predict, x, y, 16 / 255, AttackSettings(queries=600, batch_size=8))
    assert int(out.queries.sum()) == sum(predict.rows)
    assert max(predict.rows) == 8  # the active images of an iteration share calls of batch_size rows
    fooled = runtime(trained)(out.adv).argmax(1) != y
    assert fooled.any() and (out.queries[fooled] < 600).all()  # no query after success
    assert (out.queries[~fooled] == 600).all()


def test_early_stop_gives_the_full_runs_worst_case_with_fewer_queries(trained) -> None:
    x, y = make_data(6, seed=1)
    attacks, eps = ["fgsm", "square", "hopskipjump"], [4 / 255, 8 / 255, 16 / 255]
    runs = {}
    for early in (True, False):
        predict = Counting(runtime(trained))
        settings = AttackSettings(queries=150, batch_size=16, early_stop=early)
        rep = run_attacks({"m": predict}, x, y, CLASSES, attacks, eps, settings, surrogate=trained,
                          report_surrogate=False).report
        runs[early] = (rep, sum(predict.rows))
    (early, rows_early), (full, rows_full) = runs[True], runs[False]
    worst = [(w.eps, w.robust_accuracy, w.success_rate) for w in early.worst_case("m")]
    assert worst == [(w.eps, w.robust_accuracy, w.success_rate) for w in full.worst_case("m")]
    assert any(0 < w[1] < early.clean_accuracy["m"] for w in worst)  # something to compare
    assert rows_early < 0.7 * rows_full
    # the rows are cumulative: robust accuracy falls along the attack order, the last equals the worst case
    for e, robust, _s in worst:
        rows = [early.select("m", a)[[r.eps for r in early.select("m", a)].index(e)] for a in attacks]
        acc = [r.robust_accuracy for r in rows]
        assert acc == sorted(acc, reverse=True) and acc[-1] == robust
        assert all(r.n_fooled <= r.n_attacked for r in rows)
    for a in attacks:  # each single attack alone is never stronger than all of them together
        for r_full, w in zip(full.select("m", a), full.worst_case("m")):
            assert r_full.robust_accuracy >= w.robust_accuracy
    assert early.config["early_stop"] is True and any("early stop" in n for n in early.notes)
    assert any("queries/s" in n for n in early.notes)


def test_plots_leave_the_matplotlib_backend_alone(trained, tmp_path) -> None:
    import matplotlib

    from edge_tl.attacks.plots import image_grid, robustness_curve

    x, y = make_data(2, seed=4)
    run = run_attacks({"m": runtime(trained)}, x, y, CLASSES, ["square"], [8 / 255],
                      AttackSettings(queries=20))
    old = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        robustness_curve(run.report, tmp_path / "r.png")
        image_grid(run.examples, CLASSES, tmp_path / "g.png")
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(old)
    for name in ("r.png", "g.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
