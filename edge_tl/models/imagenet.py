"""The 1000 ImageNet-1k class names, from torchvision's weights metadata (shipped with torchvision, no download)."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def _classes() -> tuple[str, ...]:
    from torchvision.models import MobileNet_V2_Weights

    return tuple(MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"])


def imagenet_classes() -> list[str]:
    """ImageNet-1k class names in index order (``[281] == 'tabby'``, ``[967] == 'espresso'``).

    torchvision's list has no duplicate names, so it can go into a model card's ``classes`` as it is.
    """
    return list(_classes())

