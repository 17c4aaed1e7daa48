"""Attacks on tiny torch models and tiny ONNX / TFLite artefacts (32 px, seconds each)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from edge_tl.attacks.blackbox import art_hopskipjump, margin, square  # noqa: E402
from edge_tl.attacks.engine import run_attacks  # noqa: E402
from edge_tl.attacks.hsj import batched_hopskipjump  # noqa: E402
from edge_tl.attacks.pixels import eps_levels, perturbation_norms, quantize_adversarial  # noqa: E402
from edge_tl.attacks.registry import AttackSettings, get_attack, list_attacks  # noqa: E402
from edge_tl.errors import ConfigError, UnknownNameError  # noqa: E402
from helpers.attacks import CLASSES, EPS, Counting, make_data, one_thread, runtime, train_stripes  # noqa: E402, F401
from helpers.tflite import needs  # noqa: E402


@pytest.fixture(scope="module")
def trained() -> nn.Module:
    return train_stripes()


@pytest.fixture(scope="module")
def test_set() -> tuple[np.ndarray, np.ndarray]:
    return make_data(8, seed=1)


def test_registry_lists_both_kinds_and_rejects_unknown() -> None:
    assert set(list_attacks("whitebox")) == {"fgsm", "pgd"}
    assert set(list_attacks("blackbox")) == {"square", "hopskipjump"}
    assert get_attack("hopskipjump").eps_bounded is False
    with pytest.raises(UnknownNameError, match="did you mean 'square'"):
        get_attack("squar")


def test_quantize_adversarial_keeps_linf_within_eps() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    adv = np.clip(x / 255.0 + rng.uniform(-0.2, 0.2, x.shape), 0, 1).astype(np.float32)
    for eps in (0.5 / 255, 1 / 255, 0.01, 8 / 255, 1.0):
        q = quantize_adversarial(x, adv, eps)
        linf, _ = perturbation_norms(x, q)
        assert q.dtype == np.uint8
        assert linf.max() <= eps + 1e-9
        assert linf.max() == pytest.approx(min(eps_levels(eps), 51) / 255)  # 0.2 * 255 = 51 levels offered
    with pytest.raises(TypeError):
        quantize_adversarial(x.astype(np.float32), adv, 1 / 255)


def test_margin_sign_marks_success() -> None:
    logits = np.array([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0]])
    np.testing.assert_allclose(margin(logits, np.array([0, 0]), targeted=False), [2.0, -2.0])
    np.testing.assert_allclose(margin(logits, np.array([1, 1]), targeted=True), [2.0, -1.0])


def test_fgsm_matches_a_hand_written_signed_gradient_step(trained, test_set) -> None:
    x, y = test_set
    eps = 4 / 255
    adv = get_attack("fgsm").run(trained, x, y, eps, AttackSettings()).adv
    xt = (torch.from_numpy(x.transpose(0, 3, 1, 2)).float() / 255).requires_grad_(True)
    nn.functional.cross_entropy(trained(xt), torch.from_numpy(y)).backward()
    expected = (xt + eps * xt.grad.sign()).clamp(0, 1).detach().numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(adv, expected, atol=1e-6)


def _whitebox_run(trained, test_set, target_class=None):
    x, y = test_set
    return run_attacks({"model": runtime(trained)}, x, y, CLASSES, ["fgsm", "pgd"], EPS,
                       AttackSettings(steps=10), surrogate=trained, target_class=target_class).report


def test_robust_accuracy_falls_as_eps_grows_and_pgd_beats_fgsm(trained, test_set) -> None:
    report = _whitebox_run(trained, test_set)
    assert report.clean_accuracy["model"] == 1.0
    n = report.n_images
    for attack in ("fgsm", "pgd"):
        acc = [r.robust_accuracy for r in report.select("model", attack)]
        assert all(b <= a + 1 / n for a, b in itertools.pairwise(acc)), (attack, acc)
        assert acc[-1] < acc[0] - 0.3, (attack, acc)
    for f, p in zip(report.select("model", "fgsm"), report.select("model", "pgd")):
        assert p.robust_accuracy <= f.robust_accuracy + 1 / n, (f.eps, f.robust_accuracy, p.robust_accuracy)
    for r in report.results:
        assert r.max_linf <= r.eps + 1e-9  # judged on the 8-bit image, never above eps
        assert r.mean_linf is None or r.mean_linf <= r.eps + 1e-9
        assert r.median_queries is None and r.kind in ("whitebox", "worst-case")
    # the surrogate is reported too (here it is the same network, so the numbers agree)
    assert [r.robust_accuracy for r in report.select("surrogate", "pgd")] == \
        [r.robust_accuracy for r in report.select("model", "pgd")]


def test_targeted_pgd_reaches_the_target(trained, test_set) -> None:
    report = _whitebox_run(trained, test_set, target_class=1)
    top = report.select("model", "pgd")[-1]
    assert top.target_class == "vertical"
    assert top.n_attacked == 16  # the 8 images of the target class are not attacked
    assert top.success_rate >= 0.5


def test_only_correct_images_are_attacked(trained, test_set) -> None:
    x, y = test_set
    wrong = y.copy()
    wrong[:5] = (wrong[:5] + 1) % 3  # five labels the model cannot get right
    report = run_attacks({"model": runtime(trained)}, x, wrong, CLASSES, ["fgsm"], [8 / 255],
                         surrogate=trained).report
    r = report.select("model", "fgsm")[0]
    assert r.clean_accuracy == pytest.approx((len(y) - 5) / len(y))
    assert r.n_attacked == len(y) - 5
    assert r.robust_accuracy <= r.clean_accuracy


@pytest.mark.slow  # ~8 s alone, over 20 s on the shared machine
def test_square_matches_torchattacks_square(trained, test_set) -> None:
    torchattacks = pytest.importorskip("torchattacks")
    x, y = test_set
    eps, budget = 16 / 255, 600
    ours = square(runtime(trained), x, y, eps, AttackSettings(queries=budget, seed=0))
    ours_rate = float((runtime(trained)(ours.adv).argmax(1) != y).mean())
    atk = torchattacks.Square(trained, eps=eps, n_queries=budget, p_init=0.05, seed=0)
    ref = atk(torch.from_numpy(x.transpose(0, 3, 1, 2)).float() / 255, torch.from_numpy(y))
    ref_q = quantize_adversarial(x, ref.numpy().transpose(0, 2, 3, 1), eps)
    ref_rate = float((runtime(trained)(ref_q).argmax(1) != y).mean())
    assert ref_rate > 0.1
    assert abs(ours_rate - ref_rate) <= 0.3, (ours_rate, ref_rate)
    assert perturbation_norms(x, ours.adv)[0].max() <= eps + 1e-9


def test_hopskipjump_respects_the_budget_and_counts_every_row(trained, test_set) -> None:
    x, y = test_set
    seeds = x[(np.arange(len(x)) + 8) % len(x)]  # an image of another class for each
    predict = Counting(runtime(trained))
    out = get_attack("hopskipjump").run(predict, x[::4], y[::4], None, AttackSettings(queries=300, batch_size=16),
                                        init_images=seeds[::4])
    assert out.queries.max() <= 300
    assert int(out.queries.sum()) == sum(predict.rows)  # per-image counts are exactly the rows sent to the model
    assert max(predict.rows) == 16  # queries of several images share a call
    pred = runtime(trained)(out.adv).argmax(1)
    assert (pred != y[::4]).all()  # starting from another class, every image ends adversarial
    linf = perturbation_norms(x[::4], out.adv)[0]
    start = perturbation_norms(x[::4], seeds[::4])[0]
    assert (linf < start).mean() >= 0.5  # and the search moved most of them closer


class _NhwcView:
    """A Runtime seen through an NHWC tensor entry: HopSkipJump then draws its probes in the same order as for a
    plain pixels function, so the two entries must give the same attack, image for image."""

    def __init__(self, rt) -> None:
        self.rt, self.card, self.layout, self.calls = rt, rt.card, "NHWC", 0

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.rt(images)

    def run_tensor(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        return self.rt.run_tensor(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_hopskipjump_in_the_runtimes_own_input_format_is_the_same_attack(trained, test_set, norm) -> None:
    x, y = test_set
    x, y = x[::4], y[::4]
    seeds = x[(np.arange(len(x)) + 2) % len(x)]
    settings = AttackSettings(queries=120, norm=norm, batch_size=16)
    rt = runtime(trained)
    view = _NhwcView(rt)
    fast, d_fast = batched_hopskipjump(view, x, y, settings, init_images=seeds, norm=norm)
    plain, d_plain = batched_hopskipjump(lambda p: rt(p), x, y, settings, init_images=seeds, norm=norm)
    assert view.calls > 0  # the probes went through the tensor entry
    np.testing.assert_array_equal(fast.adv, plain.adv)
    np.testing.assert_array_equal(fast.queries, plain.queries)
    np.testing.assert_array_equal(d_fast, d_plain)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_hopskipjump_stops_an_image_once_it_is_within_the_smallest_eps(trained, test_set, norm) -> None:
    x, y = test_set
    seeds = x[(np.arange(len(x)) + 8) % len(x)]
    far = 1.0 if norm == "linf" else 60.0  # every start is already this close: nothing left to search
    out, dist = batched_hopskipjump(runtime(trained), x[::4], y[::4], AttackSettings(queries=300, norm=norm),
                                    init_images=seeds[::4], norm=norm, stop_at=far)
    assert (dist <= far).all()
    assert out.queries.max() <= 40  # the seed check and one binary search, not the whole budget


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_batched_hopskipjump_matches_art_within_the_same_budget(trained, test_set) -> None:
    pytest.importorskip("art")
    x, y = test_set
    x, y = x[::2], y[::2]
    seeds = x[(np.arange(len(x)) + 4) % len(x)]
    budget = 250
    settings = AttackSettings(queries=budget)
    predict = runtime(trained)
    ours = Counting(predict)
    mine = get_attack("hopskipjump").run(ours, x, y, None, settings, init_images=seeds)
    ref = art_hopskipjump(predict, x, y, None, settings, init_images=seeds)  # queries rounded to 8 bits
    assert mine.queries.max() <= budget and ref.queries.max() <= budget
    assert int(mine.queries.sum()) == sum(ours.rows)

    def rates(adv: np.ndarray) -> np.ndarray:
        fooled = predict(adv).argmax(1) != y
        linf = perturbation_norms(x, adv)[0]
        return np.array([(fooled & (linf <= k / 255 + 1e-9)).mean() for k in (16, 24, 32, 48)])

    ours_r, art_r = rates(mine.adv), rates(ref.adv)
    assert art_r.max() > 0
    assert (ours_r >= art_r - 1 / len(x)).all() and ours_r.sum() >= art_r.sum(), (ours_r, art_r)


@pytest.mark.parametrize("eps", [0.0, -1 / 255, 1.5])
def test_eps_outside_unit_interval_is_refused(trained, test_set, eps) -> None:
    x, y = test_set
    with pytest.raises(ConfigError, match="outside"):
        run_attacks({"model": runtime(trained)}, x, y, CLASSES, ["square"], [eps])


def _artefact(trained, fmt: str):
    """The trained net as an edge-tl artefact of format ``fmt``, built in memory and run through its Runtime."""
    from edge_tl.card import InputSpec
    from helpers.cards import card

    spec = InputSpec(size=32, resize=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), layout="NCHW")
    if fmt == "onnx":
        from edge_tl.export.onnx_export import export_float_proto
        from edge_tl.runtimes.onnx_rt import OnnxRuntime

        data = export_float_proto(trained.model, 32, 18).SerializeToString()
        return OnnxRuntime.from_bytes(data, card("onnx", tuple(CLASSES), spec=spec), threads=1)
    from edge_tl.export.tflite_export import convert_float
    from edge_tl.runtimes.litert_rt import LiteRtRuntime

    nhwc = card("tflite", tuple(CLASSES), spec=InputSpec(**{**spec.__dict__, "layout": "NHWC"}))
    return LiteRtRuntime.from_bytes(convert_float(trained.model, 32), nhwc, threads=1)


def _blackbox_checks(predict, x, y) -> None:
    eps = 16 / 255
    x, y = x[::2], y[::2]
    report = run_attacks({"artefact": predict}, x, y, CLASSES, ["square", "hopskipjump"], [8 / 255, eps],
                         AttackSettings(queries=400)).report
    sq = report.select("artefact", "square")[-1]
    assert report.clean_accuracy["artefact"] == 1.0
    assert sq.success_rate > 0, "square found no adversarial at 16/255"
    assert sq.median_queries is not None and 1 <= sq.median_queries <= 400
    for r in report.results:
        assert r.max_linf <= r.eps + 1e-9
    targeted = run_attacks({"artefact": predict}, x, y, CLASSES, ["square"], [eps],
                           AttackSettings(queries=400), target_class=2).report.results[0]
    assert targeted.n_attacked == (y != 2).sum() and targeted.success_rate > 0  # pushed into "diagonal"
    hsj = report.select("artefact", "hopskipjump")
    assert hsj[0].success_rate <= hsj[1].success_rate  # the same adversarials, judged at a growing eps


# the TFLite conversion: ~15 s alone, over 20 s on the shared machine
@pytest.mark.parametrize("fmt", ["onnx", pytest.param("tflite", marks=[pytest.mark.slow, *needs("litert_torch")])])
def test_blackbox_attacks_on_an_artefact_through_its_runtime(trained, test_set, fmt) -> None:
    rt = _artefact(trained, fmt)
    x, y = test_set
    np.testing.assert_allclose(rt(x), runtime(trained)(x), atol=1e-3)
    predict = Counting(rt, "artefact")
    _blackbox_checks(predict, x, y)
    assert max(predict.rows) > 1  # queries are batched


def test_progress_reports_every_planned_step(trained, test_set) -> None:
    from edge_tl.attacks.engine import plan_steps

    x, y = test_set
    seen = []
    run_attacks({"a": runtime(trained), "b": runtime(trained)}, x[:6], y[:6], CLASSES,
                ["fgsm", "square", "hopskipjump"], [4 / 255, 8 / 255], AttackSettings(queries=5),
                surrogate=trained, progress=seen.append)
    finished = [t for t in seen if t.finished]
    assert len(finished) == plan_steps(2, ["fgsm", "square", "hopskipjump"], [4 / 255, 8 / 255], True) == 3 + 2 + 4 + 2
    assert all(0.0 <= t.fraction <= 1.0 and t.images_done <= t.n_images for t in seen)


def test_worst_case_is_never_above_any_single_attack(trained, test_set) -> None:
    x, y = test_set
    report = run_attacks({"model": runtime(trained)}, x, y, CLASSES, ["fgsm", "pgd", "square"],
                         [4 / 255, 16 / 255], AttackSettings(steps=3, queries=30), surrogate=trained,
                         report_surrogate=False).report
    worst = report.worst_case("model")
    assert [w.eps for w in worst] == [4 / 255, 16 / 255]
    for w in worst:
        singles = [r for r in report.results if r.eps == w.eps and r.attack != "worst-case"]
        assert len(singles) == 3
        assert all(w.robust_accuracy <= r.robust_accuracy for r in singles)
        assert w.success_rate >= max(r.success_rate for r in singles)
    assert worst[-1].robust_accuracy < min(r.robust_accuracy for r in report.select("model", "square")) + 1e-9


def test_cells_resume_gives_the_same_report(trained, test_set, tmp_path) -> None:
    from edge_tl.attacks.cells import CellStore, fingerprint

    x, y = test_set
    args = ({"model": runtime(trained)}, x[:9], y[:9], CLASSES, ["fgsm", "square"], [8 / 255])
    settings = AttackSettings(queries=20)
    fp = fingerprint(x[:9], y[:9], settings=repr(settings))
    full = run_attacks(*args, settings, surrogate=trained, store=CellStore(tmp_path / "c", fp, False)).report
    seen = []
    again = run_attacks(*args, settings, surrogate=trained, store=CellStore(tmp_path / "c", fp, True),
                        progress=seen.append).report
    assert again.to_json() == full.to_json()
    assert all(t.resumed for t in seen if t.finished and "clean" not in t.unit)
    with pytest.raises(ConfigError, match="other inputs"):
        CellStore(tmp_path / "c", fingerprint(x[:8], y[:8], settings=repr(settings)), True)
