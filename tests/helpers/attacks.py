"""The attack tests' tiny world: stripe textures, a pixel-space model trained on them in ~2 s, that model as a
Runtime, a wrapper that counts the rows a model is sent, and a one-thread torch fixture."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

CLASSES = ["horizontal", "vertical", "diagonal"]
EPS = [2 / 255, 4 / 255, 8 / 255, 16 / 255]


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread in each test module that imports this (autouse): the machine is shared, and tiny models
    gain nothing from two."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def make_data(n_per: int, seed: int, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Low-contrast stripe textures on random colours: easy to learn, easy to attack."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    patterns = [np.sin(yy / 2.0), np.sin(xx / 2.0), np.sin((xx + yy) / 2.0)]
    xs, ys = [], []
    for c, p in enumerate(patterns):
        for _ in range(n_per):
            base = rng.uniform(80, 170, size=3)
            img = base + 25 * rng.uniform(0.7, 1.3) * p[..., None] + rng.normal(0, 12, (size, size, 3))
            xs.append(np.clip(img, 0, 255).astype(np.uint8))
            ys.append(c)
    return np.stack(xs), np.asarray(ys)


def train_stripes() -> Any:
    """A pixel-space model (normalisation inside) trained to 100 % on the stripes in ~2 s (seeded)."""
    import torch
    from torch import nn

    from edge_tl.attacks.pixels import pixel_model

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(32, len(CLASSES)))
    x, y = make_data(40, seed=0)
    model = pixel_model(net, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)).train()
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    xt, yt = torch.from_numpy(x.transpose(0, 3, 1, 2)).float() / 255, torch.from_numpy(y)
    for _ in range(30):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 32):
            b = perm[i:i + 32]
            loss = nn.functional.cross_entropy(model(xt[b]), yt[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def runtime(module: Any, size: int = 32) -> Any:
    """``module`` (pixel space) as the Runtime the engine runs it through."""
    from edge_tl.attacks.pixels import pixel_runtime

    return pixel_runtime(module, size, CLASSES, "model")


class Counting:
    """A model (a Runtime, or any pixels -> logits function) that records the rows of every call in ``rows``;
    a Runtime's own-format entry (``run_tensor``) is passed through and counted too."""

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], name: str = "counted") -> None:
        self.predict, self.rows = predict, []
        self.name, self.path, self.threads = name, Path(name), 1
        self.card = getattr(predict, "card", None)
        inner = getattr(predict, "run_tensor", None)
        if callable(inner):
            self.layout = predict.layout

            def run_tensor(x: np.ndarray) -> np.ndarray:
                self.rows.append(len(x))
                return inner(x)

            self.run_tensor = run_tensor

    def __call__(self, images: np.ndarray) -> np.ndarray:
        self.rows.append(len(images))
        return np.asarray(self.predict(images), np.float32)
