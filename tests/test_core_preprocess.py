"""The one preprocessing implementation reproduces torchvision's Resize + CenterCrop exactly."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edge_tl.card import InputSpec
from edge_tl.data.preprocess import center_crop_box, load_pixels, normalize, normalize_levels, resize_crop, resized_size

SPEC = InputSpec(size=56, resize=64, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def _photo(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (w + h)], -1)
    return Image.fromarray(np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8))


@pytest.mark.parametrize("w,h", [(200, 150), (150, 200), (64, 64), (333, 97), (97, 333), (57, 300)])
def test_matches_torchvision_exactly(w, h):
    from torchvision import transforms as T

    im = _photo(w, h)
    ref = np.asarray(T.Compose([T.Resize(SPEC.resize), T.CenterCrop(SPEC.size)])(im))
    assert np.array_equal(resize_crop(im, SPEC), ref)


def test_geometry_helpers():
    assert resized_size(200, 100, 50) == (100, 50)
    assert resized_size(100, 300, 50) == (50, 150)
    assert center_crop_box(101, 64, 64) == (18, 0, 82, 64)


def test_normalize_layouts_agree():
    px = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    nchw, nhwc = normalize(px, SPEC, "NCHW"), normalize(px, SPEC, "NHWC")
    assert nchw.shape == (2, 3, 8, 8) and nhwc.shape == (2, 8, 8, 3)
    assert np.array_equal(nchw.transpose(0, 2, 3, 1), nhwc)
    unit = px.astype(np.float32) / np.float32(255.0)  # the float path's arithmetic, same values bit for bit
    assert np.array_equal(normalize(unit, SPEC, "NHWC"), nhwc) and np.array_equal(normalize(unit, SPEC, "NCHW"), nchw)
    assert nchw.flags.c_contiguous and nchw.dtype == np.float32
    assert np.allclose(normalize(px.astype(np.float32) / 255, SPEC), nchw, atol=1e-6)


def test_exif_rotation_and_modes(tmp_path):
    im = _photo(80, 60)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    im.save(tmp_path / "r.jpg", exif=exif)
    assert load_pixels(tmp_path / "r.jpg", InputSpec(size=60, resize=60, mean=SPEC.mean, std=SPEC.std),
                       draft=False).shape == (60, 60, 3)
    from edge_tl.data.preprocess import open_image

    assert open_image(tmp_path / "r.jpg").size == (60, 80)
    for mode in ("L", "RGBA", "P", "CMYK", "I;16"):
        src = im.convert(mode) if mode != "I;16" else Image.fromarray(
            (np.asarray(im.convert("L"), np.uint16) * 257).astype(np.uint16))
        ext = "tiff" if mode in ("CMYK", "I;16") else "png"
        src.save(tmp_path / f"m.{ext}")
        out = open_image(tmp_path / f"m.{ext}")
        assert out.mode == "RGB" and out.size == (80, 60)


def test_draft_mode_close_to_full_decode(tmp_path):
    _photo(1200, 900, seed=3).save(tmp_path / "big.jpg", quality=90)
    a = load_pixels(tmp_path / "big.jpg", SPEC, draft=True).astype(int)
    b = load_pixels(tmp_path / "big.jpg", SPEC, draft=False).astype(int)
    assert np.abs(a - b).mean() < 3.0


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_normalize_levels_is_normalize_bit_for_bit(layout: str) -> None:
    spec = InputSpec(size=8, resize=8, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    px = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    px[0, 0, :4] = [[0, 0, 0], [255, 255, 255], [1, 254, 128], [127, 3, 200]]
    levels = px.astype(np.float32)
    if layout == "NCHW":
        levels = np.ascontiguousarray(levels.transpose(0, 3, 1, 2))
    want = normalize(px, spec, layout)
    assert normalize_levels(levels, spec, layout).tobytes() == want.tobytes()
    assert normalize_levels(levels, spec, layout, out=levels) is levels  # in place
    assert levels.tobytes() == want.tobytes()
