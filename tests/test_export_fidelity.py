"""int8 fidelity: BN folding + cross-layer equalisation, bias correction, and one judging rule for gate and budget."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from edge_tl.errors import ExportError
from edge_tl.export.bias_correction import correct_bias, fake_quant_act, fake_quant_weight
from edge_tl.export.equalize import equalize, find_pairs, fold_batchnorm, range_spread
from helpers.export_fixtures import build_run
from helpers.models import export_onnx


def _chain(act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """conv -> BN -> act -> conv -> BN -> act -> depthwise conv -> act -> pool -> linear, with unequal channels."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), act(),
                      nn.Conv2d(8, 16, 1), nn.BatchNorm2d(16), act(),
                      nn.Conv2d(16, 16, 3, padding=1, groups=16), act(),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(16, 4))
    with torch.no_grad():
        m[0].weight.mul_(torch.logspace(-2, 1, 8).view(-1, 1, 1, 1))  # output ranges spread over 3 decades
        m[3].weight.mul_(torch.logspace(1, -1, 16).view(-1, 1, 1, 1))
        for bn in (m[1], m[4]):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
    return m.eval()


def test_cle_keeps_the_float_outputs_and_evens_the_weight_ranges():
    m, x = _chain(), torch.randn(8, 3, 16, 16)
    with torch.no_grad():
        before = m(x)
    ref = _chain()
    fold_batchnorm(ref, x[:2])
    spread_first, spread_second = range_spread(ref[0]), range_spread(ref[3])
    res = equalize(m, x[:2])
    with torch.no_grad():
        after = m(x)
    assert res.folded == 2 and res.pairs == 2  # conv0 -> conv3 and conv3 -> depthwise conv6
    assert torch.allclose(before, after, atol=1e-4, rtol=1e-4)
    assert range_spread(m[0]) < spread_first / 3 and range_spread(m[3]) < spread_second / 3


def test_cle_finds_no_pair_across_relu6_unless_asked_and_replacing_changes_little():
    m, x = _chain(nn.ReLU6), torch.randn(4, 3, 16, 16)
    assert find_pairs(m, x) == []
    res = equalize(m, x, relu6="replace")
    assert res.pairs == 2 and res.relu6_replaced == 2 and not any(isinstance(c, nn.ReLU6) for c in m[:6])


class _Residual(nn.Module):
    """The ReLU's output is read by the next conv *and* by a ``+`` no module hook sees."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.act, self.b = nn.Conv2d(4, 4, 1), nn.ReLU(), nn.Conv2d(4, 4, 1)
        with torch.no_grad():
            self.a.weight.mul_(torch.tensor([0.01, 0.1, 1.0, 10.0]).view(-1, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.a(x))
        return self.b(h) + h


def test_cle_refuses_when_a_rescaled_tensor_is_read_outside_a_module():
    with pytest.raises(ExportError, match="changed the float outputs"):
        equalize(_Residual().eval(), torch.randn(4, 4, 8, 8))


def test_fake_quant_weight_matches_the_int8_grid():
    w = torch.randn(6, 3, 3, 3)
    q = fake_quant_weight(w)
    scale = w.abs().flatten(1).amax(1) / 127
    steps = q / scale.view(-1, 1, 1, 1)
    assert torch.allclose(steps, steps.round(), atol=1e-4) and steps.abs().max() <= 127 + 1e-4
    assert float((q - w).abs().max()) <= float(scale.max()) / 2 + 1e-6
    a = fake_quant_act(torch.linspace(-1, 3, 1000), -1.0, 3.0)
    assert len(torch.unique(a)) <= 256 and float((a - torch.linspace(-1, 3, 1000)).abs().max()) <= 4 / 255


def _simulated_error(m: nn.Module, ref: nn.Module, x: torch.Tensor) -> float:
    """Mean (over logits) of |mean over images of (int8 logits - float logits)|, int8 simulated on conv weights."""
    q = copy.deepcopy(m)
    with torch.no_grad():
        for c in q.modules():
            if isinstance(c, nn.Conv2d):
                c.weight.copy_(fake_quant_weight(c.weight))
        return float((q(x) - ref(x)).mean(0).abs().mean())


def test_bias_correction_reduces_the_mean_output_error():
    torch.manual_seed(1)
    m = _chain()  # int8 rounding shifts its means: one huge weight per output channel coarsens the grid
    with torch.no_grad():
        m[3].weight[:, 0] = 50.0 * m[3].weight[:, 0].sign()
    fold_batchnorm(m, torch.randn(2, 3, 16, 16))
    ref = copy.deepcopy(m)
    calib, held_out = torch.randn(64, 3, 16, 16) + 0.3, torch.randn(64, 3, 16, 16) + 0.3
    before = _simulated_error(m, ref, held_out)
    res = correct_bias(m, calib, activations=False)
    after = _simulated_error(m, ref, held_out)
    assert res.layers == 3 and res.max_correction > 0
    assert after < 0.5 * before, (before, after)
    with torch.no_grad():  # the float model itself moved only by the corrections, not its weights
        assert all(torch.equal(a.weight, b.weight) for a, b in zip(m.modules(), ref.modules())
                   if isinstance(a, nn.Conv2d))


def test_gate_and_budget_judge_the_same_images_with_the_same_rule(tmp_path, sample_dir):
    run = build_run(tmp_path / "run", sample_dir)
    result = export_onnx(run, ["int8"], tmp_path / "out", calib_size=20, max_drop=0.0, min_agreement=0.5,
                         max_ece_delta=100.0)
    [art] = [a for a in result.artifacts if a.quantize == "int8"]
    [par] = [p for p in result.parity if p.quantize == "int8"]
    budget = art.card.quantization.budget
    assert budget.images == par.n and budget.split == par.images
    assert "without 20 calibration images" in par.images
    assert budget.agreement == pytest.approx(par.agreement)
    assert budget.drop == pytest.approx(par.drop)
    assert budget.max_drop_resolved == pytest.approx(100.0 / par.n)  # 0.0 is finer than one image
    assert budget.fits == (not any(f.startswith(("accuracy drop", "agreement")) for f in par.failures))
