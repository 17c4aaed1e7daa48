"""The Fourier / decorrelated-colour parametrisation, the random views and the transformation-robust objective,
on the attack tests' tiny stripe-texture CNN (``helpers.attacks``), trained once in a fixture (a few seconds)."""

from __future__ import annotations

import numpy as np
import pytest

from edge_tl.attacks import featureviz
from edge_tl.attacks.featureviz import FourierImage, PixelImage, RobustTransform, make_parametrisation, rfft2d_freqs
from edge_tl.attacks.visualize import VisualizeSettings, ideal_image, judge, to_tensor
from edge_tl.errors import ConfigError
from helpers.attacks import make_data, one_thread, train_stripes  # noqa: F401

torch = pytest.importorskip("torch")
nn = torch.nn


@pytest.fixture(scope="module")
def stripes_model() -> nn.Module:
    model = train_stripes().requires_grad_(False)
    x, y = make_data(6, seed=5)
    assert (model(torch.from_numpy(x.transpose(0, 3, 1, 2)).float() / 255).argmax(1).numpy() == y).mean() > 0.9
    return model


def test_fourier_spectrum_shape_matches_torch_rfft() -> None:
    for h, w in ((32, 32), (31, 31), (8, 12)):
        assert rfft2d_freqs(h, w).shape == tuple(torch.fft.rfft2(torch.zeros(h, w)).shape)
    assert rfft2d_freqs(8, 8)[0, 0] == 0.0


def test_colour_decorrelation_is_invertible_and_bounded() -> None:
    assert np.linalg.matrix_rank(featureviz.COLOR_CORRELATION) == 3
    assert np.linalg.norm(featureviz.COLOR_CORRELATION, axis=0).max() == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["fourier", "pixel"])
def test_parametrisation_gives_pixels_in_range_even_for_large_parameters(name: str) -> None:
    gen = torch.Generator().manual_seed(0)
    image = make_parametrisation(name, 24, gen)
    img = image().detach()
    assert tuple(img.shape) == (1, 3, 24, 24)
    assert 0.4 < float(img.mean()) < 0.6  # starts near grey
    with torch.no_grad():
        for p in image.params:
            p.mul_(1e4)
    big = image().detach()
    assert float(big.min()) >= 0.0 and float(big.max()) <= 1.0 and torch.isfinite(big).all()


def test_fourier_parametrisation_round_trips_an_image() -> None:
    """Fitting the spectrum to a target image reproduces it: the parametrisation spans pixel space, through the
    inverse FFT, the colour matrix and the sigmoid."""
    gen = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:16, 0:16]
    target = np.stack([0.5 + 0.3 * np.sin(xx / 2.0), 0.4 + 0.2 * np.cos(yy / 3.0), 0.3 + 0.1 * rng.random((16, 16))])
    target_t = torch.from_numpy(target[None].astype(np.float32))
    image = FourierImage(16, gen)
    opt = torch.optim.Adam(image.params, lr=0.1)
    for _ in range(120):
        loss = ((image() - target_t) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float((image() - target_t).abs().max()) < 0.05
    assert PixelImage(16, gen)().shape == image().shape


def test_robust_transform_pads_with_grey_and_moves_the_image() -> None:
    gen = torch.Generator().manual_seed(0)
    img = torch.rand(2, 3, 20, 20, generator=gen)
    assert RobustTransform()(img, gen) is img
    padded = RobustTransform(pad=3)(img, gen)
    assert tuple(padded.shape) == (2, 3, 26, 26) and torch.all(padded[:, :, :3] == 0.5)
    moved = RobustTransform(pad=3, jitter=2, scale=0.1, degrees=10)(img, gen)
    assert tuple(moved.shape) == (2, 3, 26, 26)
    assert float(moved.min()) >= 0.0 and float(moved.max()) <= 1.0
    assert not torch.allclose(moved, padded, atol=1e-3) and not torch.allclose(moved[0], moved[1], atol=1e-3)
    with pytest.raises(ConfigError):
        RobustTransform(scale=0.7)


def test_transformation_robust_objective_still_raises_the_class_score(stripes_model) -> None:
    settings = VisualizeSettings.preset("fourier", steps=40, pad=2, jitter=2, scale=0.1, rotate=10, seed=3)
    gen = torch.Generator().manual_seed(settings.seed)
    with torch.no_grad():
        logits = stripes_model(make_parametrisation("fourier", 32, gen)())[0]  # the starting image
    start = torch.softmax(logits, 0)
    for cls in (0, 1, 2):
        im = ideal_image(stripes_model, cls, 32, settings, name=f"c{cls}")
        assert im.image.shape == (32, 32, 3) and im.image.dtype == np.uint8
        assert im.probability > 0.9 > float(start[cls])
        assert im.logit > float(logits[cls]) + 2.0


def test_judge_reports_a_second_models_probability_and_rank(stripes_model) -> None:
    settings = VisualizeSettings.preset("fourier", steps=30, pad=2, jitter=2, scale=0.1, rotate=10)
    im = ideal_image(stripes_model, 1, 32, settings, name="vertical")
    from edge_tl.attacks.pixels import pixel_model

    torch.manual_seed(1)  # any second model (untrained): the judgement is checked against its own softmax
    body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))
    other = pixel_model(body, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)).eval().requires_grad_(False)
    judged = judge(im, other, ["horizontal", "vertical", "diagonal"], "other", size=48)
    with torch.no_grad():
        x = nn.functional.interpolate(to_tensor(im.image), size=(48, 48), mode="bilinear", antialias=True)
        probs = torch.softmax(other(x)[0].double(), 0)
    assert judged.judged is not None and judged.judged.judge == "other"
    assert judged.judged.probability == pytest.approx(float(probs[1]))
    assert judged.judged.rank == 1 + int((probs > probs[1]).sum())
    assert judged.judged.top == ["horizontal", "vertical", "diagonal"][int(probs.argmax())]
    assert judged.to_json()["judged"]["rank"] == judged.judged.rank
    assert judge(im, stripes_model, ["h", "v", "d"], "self").judged.probability == pytest.approx(im.probability)


def test_presets_and_bad_settings() -> None:
    assert VisualizeSettings.preset("pixel").param == "pixel" and VisualizeSettings.preset().param == "fourier"
    assert VisualizeSettings.preset("fourier", steps=None, jitter=3).jitter == 3
    with pytest.raises(ConfigError, match="unknown image parametrisation 'fft'"):
        VisualizeSettings.preset("fft")
    with pytest.raises(ConfigError):
        VisualizeSettings.preset("fourier", views=0)
