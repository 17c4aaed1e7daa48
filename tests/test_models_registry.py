"""The backbone registry: every entry's spec, the EdgeModel seam, freezing, create_model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from edge_tl.errors import ConfigError, UnknownNameError, WeightsError
from edge_tl.models import create_model, get_spec, list_backbones
from edge_tl.models.base import EdgeModel

ALL = list_backbones(include_test=True)
REAL = list_backbones()
TINY = [n for n in ALL if get_spec(n).test_only]
EXPECTED_REAL = {"mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "resnet18", "resnet50", "vgg16",
                 "efficientnet_lite0"}
# parameter counts of the source architectures (torchvision meta["num_params"]; timm for EfficientNet-Lite0)
PARAMS = {"mobilenet_v2": 3_504_872, "mobilenet_v3_small": 2_542_856, "mobilenet_v3_large": 5_483_032,
          "resnet18": 11_689_512, "resnet50": 25_557_032, "vgg16": 138_357_544, "efficientnet_lite0": 4_652_008}


def test_registered_names():
    assert set(REAL) == EXPECTED_REAL
    assert set(TINY) == {"tiny_cnn", "tiny_mobilenet"}


@pytest.mark.parametrize("name", ALL)
def test_spec_fields_are_sane(name):
    spec = get_spec(name)
    assert spec.name == name and callable(spec.builder)
    assert 32 <= spec.input_size <= spec.resize_size <= 2 * spec.input_size
    assert len(spec.mean) == len(spec.std) == 3
    assert all(0 < m < 1 for m in spec.mean) and all(0 < s <= 1 for s in spec.std)
    assert spec.interpolation in ("bilinear", "bicubic", "nearest")
    assert spec.licence and spec.description
    inp = spec.input_spec()
    assert (inp.size, inp.resize, inp.mean, inp.std) == (spec.input_size, spec.resize_size, spec.mean, spec.std)
    if spec.test_only:
        assert spec.weights is None and spec.input_size == 32
        return
    w = spec.weights
    assert w is not None and w.num_classes == 1000 and w.licence
    assert re.fullmatch(r"[0-9a-f]{8,64}", w.sha256)
    assert w.file_name.endswith(".pth")
    assert w.sha256[:8] in w.file_name  # torch.hub / lukemelas convention: name-<sha256 prefix>.pth
    assert w.url is not None or w.package is not None  # somewhere to get it from
    if w.url:
        assert w.url.startswith("https://") and w.url.endswith(w.file_name)
    if w.package:
        assert w.package_path and w.pip_name


def test_input_spec_scales_resize_with_img_size():
    spec = get_spec("mobilenet_v2")
    assert spec.input_spec(224).resize == 256
    assert spec.input_spec(160).resize == round(160 * 256 / 224)


@pytest.mark.parametrize("name", TINY)
def test_tiny_forward_shapes_and_seam(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, img_size=32)
    assert isinstance(model, EdgeModel) and not model.training
    assert model.weights_info is None  # test backbones: random init is their default
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        f = model.forward_features(x)
        assert f.shape == (4, model.feature_dim)
        assert torch.equal(model.features(x), f)  # features alone is the whole extractor
        logits = model(x)
    assert logits.shape == (4, 5)
    assert torch.allclose(model.forward_head(f), logits)
    assert isinstance(model.head, nn.Linear) and model.head.in_features == model.feature_dim
    model.reset_head(7)
    assert model.num_classes == 7 and model(x).shape == (4, 7)
    assert model.input_spec.size == 32


def test_tiny_mobilenet_has_the_mobilenetv3_parts():
    from torchvision.ops.misc import SqueezeExcitation

    model = create_model("tiny_mobilenet")
    assert {nn.Hardswish, nn.Hardsigmoid, SqueezeExcitation, nn.ReLU} <= {type(m) for m in model.modules()}
    assert model.blocks[1].use_res_connect  # a stride-1 block with equal channels is residual


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("keep", [0, 1, 2])
def test_freeze_leaves_last_blocks_and_head_trainable(name, keep):
    model = create_model(name, num_classes=3)
    model.freeze(except_last=keep)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    expected = {id(p) for b in model.blocks[len(model.blocks) - keep:] for p in b.parameters()}
    expected |= {id(p) for p in model.head.parameters()}
    assert trainable == expected
    model.train()
    n_frozen = len(model.blocks) - keep
    for i, block in enumerate(model.blocks):  # frozen BN stays in eval mode in train mode, the rest trains
        assert all(m.training == (i >= n_frozen) for m in block.modules() if isinstance(m, nn.BatchNorm2d))
    # running statistics of frozen BN do not move in a train-mode forward; frozen parameters get no gradient
    bn = next(m for m in model.blocks[0].modules() if isinstance(m, nn.BatchNorm2d))
    before = bn.running_mean.clone()
    model(torch.randn(2, 3, 32, 32) * 3 + 1).sum().backward()
    assert torch.equal(bn.running_mean, before)
    assert all((p.grad is not None) == p.requires_grad for p in model.parameters())
    model.unfreeze()
    model.train()
    assert all(p.requires_grad for p in model.parameters()) and bn.training


def test_freeze_out_of_range_is_config_error():
    model = create_model("tiny_cnn")
    model.freeze(except_last=len(model.blocks))  # everything trainable is allowed
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(ConfigError, match="has 3"):
        model.freeze(except_last=4)
    with pytest.raises(ConfigError):
        model.freeze(except_last=-1)


@pytest.mark.parametrize("name", REAL)
def test_real_backbone_structure_random_init(name):
    """Built with weights='none' (explicit random init): parameter count, blocks cover the backbone, shapes.

    Built on the meta device: same modules and shapes, no time spent initialising 138M VGG parameters.
    """
    with torch.device("meta"):
        model = create_model(name, weights="none", num_classes=4)
    assert model.weights_info is None
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == PARAMS[name] - 1000 * (model.feature_dim + 1) + 4 * (model.feature_dim + 1)
    in_blocks = {id(p) for b in model.blocks for p in b.parameters()}
    assert in_blocks == {id(p) for p in model.features.parameters()}  # blocks hold every backbone parameter
    x = torch.empty(1, 3, 64, 64, device="meta")  # adaptive pooling: any size >= 32 works
    with torch.no_grad():
        assert model.forward_features(x).shape == (1, model.feature_dim)
        assert model(x).shape == (1, 4)
    model.freeze(except_last=1)
    assert sum(p.requires_grad for p in model.features.parameters()) == len(list(model.blocks[-1].parameters()))


@pytest.mark.parametrize(("name", "kw", "error", "match"), [
    ("tiny_cnn", {"img_size": 16}, ConfigError, "too small"),
    ("tiny_cnn", {"num_classes": 0}, ConfigError, None),
    ("resnet19", {"weights": "none"}, UnknownNameError, None),
    ("tiny_cnn", {"weights": Path("/nonexistent/nope.pth")}, WeightsError, "does not exist"),
])
def test_create_model_rejects_bad_arguments(name, kw, error, match):
    with pytest.raises(error, match=match):
        create_model(name, **kw)


def test_state_dict_round_trip_in_edge_layout(tmp_path):
    torch.manual_seed(1)
    src = create_model("tiny_cnn", num_classes=6)
    path = tmp_path / "mine.pth"
    torch.save(src.state_dict(), path)
    again = create_model("tiny_cnn", weights=path)  # head size taken from the file
    assert again.num_classes == 6 and again.weights_info.source == "explicit"
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(src(x), again(x))
    fresh = create_model("tiny_cnn", weights=path, num_classes=2)  # new head on top of loaded features
    with torch.no_grad():
        assert torch.allclose(src.forward_features(x), fresh.forward_features(x))
    assert fresh.num_classes == 2


@pytest.mark.parametrize(("write", "match"), [
    (lambda p: p.write_bytes(b"this is not a torch file"), "not a loadable state dict"),
    (lambda p: torch.save([1, 2, 3], p), "does not hold a state dict"),
    (lambda p: torch.save(create_model("tiny_mobilenet").state_dict(), p), "does not fit backbone tiny_cnn"),
])
def test_unusable_state_dict_is_weights_error(tmp_path, write, match):
    write(tmp_path / "w.pth")
    with pytest.raises(WeightsError, match=match):
        create_model("tiny_cnn", weights=tmp_path / "w.pth")


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "mobilenet_v3_large", "resnet18"])
def test_wrapper_matches_torchvision_forward(name, tmp_path):
    """A torchvision-layout state dict (as in the hub cache) loads, and EdgeModel computes torchvision's logits."""
    import torchvision.models as tvm

    torch.manual_seed(0)
    tv = getattr(tvm, name)(weights=None).eval()
    for m in tv.modules():  # non-trivial BatchNorm statistics so a mis-wired layer shows
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / f"{name}-mine.pth"
    torch.save(tv.state_dict(), path)
    model = create_model(name, weights=path)
    assert model.weights_info.source == "explicit"
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), tv(x), atol=1e-4, rtol=1e-4)
