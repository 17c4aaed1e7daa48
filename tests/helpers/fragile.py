"""Models with one deliberately fragile layer (harmless in float, ruinous for per-channel int8 weight scales).

``fragile_model()`` is a standalone 4-class conv net with that layer; ``make_fragile(model)`` plants the same
flaw in a ``tiny_cnn`` (a ``build_run`` tweak); ``pixels()`` are the images ``fragile_model`` is centred on.
"""

from __future__ import annotations

import numpy as np


def fragile_model():
    import torch
    from torch import nn

    torch.manual_seed(0)

    class Fragile(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1 = nn.Conv2d(3, 8, 3, padding=1)
            self.c2 = nn.Conv2d(8, 8, 3, padding=1)
            self.c3 = nn.Conv2d(8, 8, 3, padding=1)
            self.fc = nn.Linear(8, 4)
            with torch.no_grad():
                self.c1.bias[7] = -100.0  # channel 7 of relu(c1) is always 0
                self.c2.weight[:, 7, 1, 1] = 1000.0  # harmless in float, ruinous for int8 weight scales
                for m in (self.c2, self.c3, self.fc):
                    m.bias.zero_()
                self.fc.weight.mul_(10)

        def forward(self, x):
            x = torch.relu(self.c1(x))
            x = torch.relu(self.c2(x))
            x = torch.relu(self.c3(x))
            return self.fc(x.mean((2, 3)))

    model = Fragile().eval()
    with torch.no_grad():  # centre the logits so the float model predicts every class on pixels()
        x = (torch.from_numpy(pixels()).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
        model.fc.bias -= model(x).mean(0)
    return model


def pixels(n: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.integers(0, 256, (n, 1, 1, 3)) + rng.normal(0, 20, (n, 32, 32, 3)), 0, 255).astype(np.uint8)


def make_fragile(model) -> None:
    """Channel 7 of the stem is always 0 after its ReLU; stage1 gives it a weight of 1000 (harmless in float,
    ruinous for the per-channel int8 scale of stage1's conv)."""
    import torch

    stem_bn, stage1_conv = model.features[0].stem[1], model.features[0].stage1[0]
    with torch.no_grad():
        stem_bn.weight[7], stem_bn.bias[7] = 0.0, -100.0
        stage1_conv.weight[:, 7, 1, 1] = 1000.0
