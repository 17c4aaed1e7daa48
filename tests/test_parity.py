"""edge_tl.parity: figures (agreement, drop, |Δlogit|, saturation, KL, |Δprob|, ECE) and the gate."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from edge_tl import parity
from edge_tl.card import InputSpec
from edge_tl.errors import DataError, ParityError
from edge_tl.parity import ParityLimits, check_parity, ece, gate, kl_divergence, limits_for, saturation
from edge_tl.records import ParityResult
from edge_tl.runtimes import softmax


class FakeRuntime:
    """A runtime whose logits are given; its raw output is optionally an integer tensor; counts inferences."""

    name, threads, card, path = "fake", 1, None, Path("fake.onnx")

    def __init__(self, logits: np.ndarray, raw: np.ndarray | None = None) -> None:
        self.logits, self._raw, self.calls = logits.astype(np.float32), raw, 0

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.outputs(images)[1]

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        return softmax(self(images))

    def raw(self, images: np.ndarray) -> np.ndarray:
        return self.outputs(images)[0]

    def outputs(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls += 1
        return (self.logits if self._raw is None else self._raw), self.logits


@pytest.fixture()
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 3, (200, 5)).astype(np.float32)
    labels = ref.argmax(1).copy()
    labels[:20] = (labels[:20] + 1) % 5  # 90 % accurate reference
    return np.zeros((200, 8, 8, 3), np.uint8), ref, labels


def test_identical_float_passes(data):
    pixels, ref, labels = data
    r = check_parity(FakeRuntime(ref + 1e-5), ref, pixels, labels, limits_for("onnx", "none"), variant="m.onnx")
    assert r.passed and r.agreement == 1.0 and r.drop == 0.0 and r.saturated == 0.0
    assert r.accuracy == pytest.approx(0.9) and r.max_dlogit == pytest.approx(1e-5, rel=0.1)
    assert r.kl < 1e-8 and r.ece == pytest.approx(r.ece_reference, abs=1e-6)
    assert r.to_json()["passed"] is True


def test_float_logit_tolerance_fails(data):
    pixels, ref, labels = data
    r = check_parity(FakeRuntime(ref + 0.01), ref, pixels, labels, limits_for("onnx", "none"))
    assert not r.passed and any("max |dlogit|" in f for f in r.failures)


def test_int8_flips_and_drop(data):
    pixels, ref, labels = data
    out = ref.copy()
    flip = np.where(ref.argmax(1) == labels)[0][:10]  # 10 correct answers become wrong: 5 % flips, 5 pt drop
    out[flip, ref[flip].argmax(1)] -= 100
    r = check_parity(FakeRuntime(out), ref, pixels, labels, limits_for("onnx", "int8", max_drop=1.0))
    assert r.agreement == pytest.approx(0.95) and r.drop == pytest.approx(5.0)
    assert any("agreement" in f for f in r.failures) and any("accuracy drop" in f for f in r.failures)
    loose = limits_for("onnx", "int8", max_drop=6.0, min_int8_agreement=0.9, max_ece_delta=100)
    assert check_parity(FakeRuntime(out), ref, pixels, labels, loose).passed


def test_saturation_counts_integer_limits(data):
    pixels, ref, labels = data
    raw = np.full(ref.shape, 128, np.uint8)
    raw[:4, 0] = 255  # 4 of 1000 values at the uint8 limit: 0.4 %
    rt = FakeRuntime(ref, raw)
    r = check_parity(rt, ref, pixels, labels, limits_for("onnx", "int8"))
    assert rt.calls == 1  # the raw tensor and the logits come from one inference
    assert r.saturated == pytest.approx(0.004) and any("saturated" in f for f in r.failures)
    assert saturation(np.array([-128, 0, 127], np.int8)) == pytest.approx(2 / 3)
    assert saturation(np.array([1.0, 5.0], np.float32)) == 0.0


def test_clipped_logits_change_probabilities_and_ece(data):
    pixels, ref, labels = data
    clipped = np.clip(ref, -1.0, 1.0)  # what a saturated int8 output does: top-1 mostly survives, not the probs
    r = check_parity(FakeRuntime(clipped), ref, pixels, labels, limits_for("onnx", "int8", max_drop=100))
    assert r.kl > 0.1 and r.max_dprob > 0.3
    assert abs(r.ece - r.ece_reference) > 0.01 and any("ECE" in f for f in r.failures)


def test_ece_and_kl_reference_values():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    labels = np.array([0, 1, 1])
    # bins: 0.9 (correct) -> |1-0.9|, 0.6 (wrong) -> |0-0.6|, 0.8 (correct) -> |1-0.8|; each weight 1/3
    assert ece(probs, labels) == pytest.approx((0.1 + 0.6 + 0.2) / 3)
    p = np.array([[0.5, 0.5]])
    assert kl_divergence(p, p) == pytest.approx(0.0, abs=1e-9)
    assert kl_divergence(p, np.array([[0.9, 0.1]])) == pytest.approx(0.5 * np.log(0.5 / 0.9) + 0.5 * np.log(5))


def test_float_ties_are_not_flips():
    ref = np.array([[1.0, 1.0 + 1e-5], [3.0, 0.0]], np.float32)
    out = np.array([[1.0 + 1e-5, 1.0], [3.0, 0.0]], np.float32)
    pixels = np.zeros((2, 4, 4, 3), np.uint8)
    r = check_parity(FakeRuntime(out), ref, pixels, None, limits_for("onnx", "none"))
    assert r.agreement == 0.5 and r.passed  # the flip is inside the logit tolerance: a tie
    strict = ParityLimits(max_dlogit=1e-3, ignore_ties=False)
    assert not check_parity(FakeRuntime(out), ref, pixels, None, strict).passed


def test_gate_raises_with_rows(data):
    pixels, ref, labels = data
    good = check_parity(FakeRuntime(ref), ref, pixels, labels, limits_for("onnx", "none"), variant="a.onnx")
    bad = check_parity(FakeRuntime(ref + 1), ref, pixels, labels, limits_for("onnx", "none"), variant="b.onnx")
    gate([good])
    with pytest.raises(ParityError, match=r"b\.onnx: max") as err:
        gate([good, bad])
    assert [row["variant"] for row in err.value.rows] == ["a.onnx", "b.onnx"]
    assert "\n" not in str(err.value)


def test_empty_input_is_an_error():
    with pytest.raises(DataError):
        check_parity(FakeRuntime(np.zeros((0, 2))), np.zeros((0, 2)), np.zeros((0, 4, 4, 3), np.uint8), None,
                     ParityLimits())


def test_drop_is_judged_at_the_resolution_of_the_images(data):
    pixels, ref, labels = data
    assert parity.drop_limit(0.5, 150) == pytest.approx(100 / 150) and parity.drop_limit(1.0, 1000) == 1.0
    out = ref.copy()
    i, j = np.where(ref.argmax(1) == labels)[0][:2]
    out[i, ref[i].argmax()] -= 100  # one image of 200 lost: 0.5 pt, finer than max_drop 0.1 can resolve
    lim = limits_for("onnx", "int8", max_drop=0.1, min_int8_agreement=0.99, max_ece_delta=100)
    r = check_parity(FakeRuntime(out), ref, pixels, labels, lim, images="test")
    assert r.drop == pytest.approx(0.5) and r.resolution == pytest.approx(0.5) and r.passed
    out[j, ref[j].argmax()] -= 100  # a second one: 1.0 pt, more than one image can hide
    r2 = check_parity(FakeRuntime(out), ref, pixels, labels, lim)
    assert any("1 image = 0.50 pt of 200" in f for f in r2.failures)
    lo, hi = r2.agreement_ci
    assert lo < r2.agreement < hi and hi - lo < 0.05


def test_fidelity_set_uses_every_image_but_the_calibration_ones(tmp_path):
    files = [tmp_path / f"{i}.png" for i in range(12)]
    for i, f in enumerate(files):
        Image.fromarray(np.full((8, 8, 3), 20 * i, np.uint8)).save(f)
    split = {"train": files[:8], "val": files[8:10], "test": files[10:]}
    manifest = SimpleNamespace(files=split.__getitem__, labels=lambda s: [i % 2 for i in range(len(split[s]))])
    spec = InputSpec(size=8, resize=8, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    fid = parity.fidelity_set(manifest, spec, exclude=files[:3], min_views=0)
    assert fid.unique == 9 and len(fid.pixels) == 9 and fid.description == "train+val+test without 3 calibration images"
    mirrored = parity.fidelity_set(manifest, spec, exclude=files[:3])
    assert len(mirrored.pixels) == 18 and "mirrored" in mirrored.description
    assert np.array_equal(mirrored.pixels[9:], mirrored.pixels[:9, :, ::-1])


def test_ece_difference_within_its_noise_is_reported_not_failed():
    # 400 images, 98 % accurate; int8-like noise on the logits (99.75 % agreement) moves the ECE by more than the
    # 1-point limit, but a paired bootstrap over the same images cannot tell that from no change.
    from edge_tl.parity import ece_delta_interval

    rng = np.random.default_rng(0)
    n = 400
    labels = rng.integers(0, 2, n)
    ref = np.zeros((n, 2), np.float32)
    ref[np.arange(n), labels] = rng.uniform(1.0, 6.0, n)
    wrong = rng.choice(n, 8, replace=False)
    ref[wrong] = ref[wrong][:, ::-1]
    out = ref + rng.normal(0, 0.5, ref.shape).astype(np.float32)
    pixels = np.zeros((n, 4, 4, 3), np.uint8)
    r = check_parity(FakeRuntime(out), ref, pixels, labels, limits_for("onnx", "int8", max_drop=100))
    lo, hi = r.ece_delta_ci
    assert 100 * abs(r.ece - r.ece_reference) > 1.0 and lo < 0 < hi and r.passed
    assert ece_delta_interval(softmax(out), softmax(ref), labels) == (lo, hi)  # seeded: reproducible
    assert ParityResult.from_json(r.to_json()).ece_delta_ci == pytest.approx((lo, hi))
    # a systematic change (clipped logits: every answer less confident) is resolved and fails
    clipped = check_parity(FakeRuntime(np.clip(ref, -1.0, 1.0)), ref, pixels, labels,
                           limits_for("onnx", "int8", max_drop=100))
    assert clipped.ece_delta_ci[0] > 0.01 and any("ECE" in f and "95 % CI" in f for f in clipped.failures)


def test_ece_matches_its_binned_definition():
    rng = np.random.default_rng(1)
    probs = softmax(rng.normal(0, 2, (300, 4)))
    labels = rng.integers(0, 4, 300)
    conf, correct = probs.max(1), probs.argmax(1) == labels
    idx = np.clip(np.digitize(conf, np.linspace(0, 1, 16)[1:-1], right=True), 0, 14)
    want = sum((idx == b).mean() * abs(correct[idx == b].mean() - conf[idx == b].mean())
               for b in range(15) if (idx == b).any())
    assert ece(probs, labels) == pytest.approx(want)
