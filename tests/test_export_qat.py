"""Quantisation-aware fine-tuning: it lowers the simulated int8 error it trains against, touches only the last
blocks and the head, reverts when it does not help, and reaches the int8 artefact's card."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edge_tl.export.equalize import fold_batchnorm
from edge_tl.export.qat import _quant_points, qat
from helpers.attacks import one_thread  # noqa: F401  (autouse: one torch thread in this module)


def _model(name: str = "tiny_mobilenet") -> nn.Module:
    """A random-init backbone whose head gives confident, varied logits (so int8 rounding changes predictions)."""
    from edge_tl.models import create_model

    torch.manual_seed(0)
    model = create_model(name, num_classes=4, weights="none", img_size=32).eval()
    spread = model.forward_features(_images(64, 3)).detach().std(0).mean()
    with torch.no_grad():  # logits of a few units: int8 rounding moves them by a measurable amount
        model.head.weight.copy_(torch.randn_like(model.head.weight) * 0.3 / spread)
        model.head.bias.zero_()
    fold_batchnorm(model, _images(4, 9))
    return model


def _images(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return nn.functional.interpolate(torch.randn(n, 3, 8, 8, generator=g), size=32, mode="bilinear")


def _params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, dict[str, torch.Tensor], object]:
    model = _model()
    before = _params(model)
    return model, before, qat(model, _images(96, 1), epochs=6, lr=3e-5, seed=0)


def test_qat_lowers_the_held_out_simulated_int8_error(trained):
    r = trained[2]
    assert r.kept and r.images == 72 and r.held_out == 24 and r.points > 0
    assert r.kl_before > 0 and r.kl_after < 0.8 * r.kl_before


def test_only_the_last_blocks_and_the_head_change(trained):
    model, before, r = trained
    after = _params(model)
    trainable = {f"features.{p}." for p in model.block_paths[-r.blocks:]} | {"head."}
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(any(k.startswith(t) for t in trainable) for k in changed)
    assert any(k.startswith("head.") for k in changed)
    assert not any(isinstance(m, nn.Module) and torch.nn.utils.parametrize.is_parametrized(m)
                   for m in model.modules())  # the fake-quant parametrisations are gone: plain float weights


def test_qat_that_does_not_help_is_reverted():
    model = _model()
    before = _params(model)
    r = qat(model, _images(48, 2), epochs=2, lr=1.0, seed=0)  # a step size that wrecks the model
    assert not r.kept and r.kl_after > r.kl_before
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_quant_points_are_the_tensors_the_int8_graph_stores():
    """Activations, convs not followed by one (through folded-BN Identities), containers (residual adds): not the
    head, and not a conv whose output goes straight into its activation."""
    model = _model("tiny_cnn")
    points = _quant_points(model, model.head, _images(2, 0))
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(any(p is r for p in points) for r in relus)
    assert not any(p is c for p in points for c in convs)  # every conv feeds a ReLU (via the folded BN)
    assert not any(p is model.head for p in points) and not any(p is model for p in points)


def _calibration(batch: int) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(0)
    for _ in range(4):
        yield rng.integers(0, 256, (batch, 32, 32, 3), dtype=np.uint8)


def test_prepare_for_int8_records_qat():
    from edge_tl.card import InputSpec
    from edge_tl.export.int8_prep import prepare_for_int8
    from edge_tl.models import create_model

    torch.manual_seed(0)
    model = create_model("tiny_cnn", num_classes=2, weights="none", img_size=32).eval()
    spec = InputSpec(size=32, resize=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    said: list[str] = []
    prepared, record = prepare_for_int8(model, spec, _calibration, "qat", say=said.append)
    assert prepared is not model and record["steps"] == "qat" and record["bn_folded"] == 3
    q = record["qat"]
    assert q["images"] + q["held_out"] == 64 and q["epochs"] > 0 and isinstance(q["kept"], bool)
    assert [m.split(":")[0] for m in said] == [f"QAT epoch {e}/{q['epochs']}" for e in range(1, q["epochs"] + 1)]


@pytest.mark.slow  # an ONNX export and its int8 build
def test_cli_export_onnx_int8_with_qat(tiny_run: Path, tmp_path: Path, capsys):
    pytest.importorskip("onnxruntime")
    from edge_tl.card import ModelCard, sidecar_path
    from helpers.cli import cli

    out = tmp_path / "ex"
    res = cli(["export", "--model", str(tiny_run), "--out", str(out), "--format", "onnx", "--quantize", "int8",
               "--calib-size", "16", "--min-agreement", "50", "--max-drop", "100", "--qat", "--no-verify"], capsys)
    assert res.code == 0, res.err
    prep = ModelCard.load(sidecar_path(out / "model_int8.onnx")).quantization.prep
    assert prep.choice == "qat" and prep.steps == "qat" and prep.details["qat"]["images"] > 0
