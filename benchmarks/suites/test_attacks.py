"""One black-box attack step on a small batch against the float ONNX file: Square and HopSkipJump."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("name", ["square", "hopskipjump"])
def test_attack(benchmark, exported, pixels, name):
    from edge_tl.attacks.registry import AttackSettings, get_attack
    from edge_tl.runtimes import load

    rt = load(exported["model.onnx"], threads=1)
    x = pixels[:4]
    y = rt(x).argmax(1)
    spec = get_attack(name)
    settings = AttackSettings(queries=50, batch_size=4, seed=0)
    eps = 8 / 255 if spec.eps_bounded else None
    crafted = benchmark.pedantic(spec.run, args=(rt, x, y, eps, settings), rounds=3, warmup_rounds=1)
    benchmark.extra_info.update(images=len(x), queries=settings.queries)
    assert crafted.adv.shape == x.shape
