"""Weighted residual blocks H = alpha F(x) + beta x, and CSP stages."""
import json

import numpy as np
import pytest
import torch
from speed import hang_s

from resnet_viz.config import ModelSpec, TrainSpec
from resnet_viz.i18n import LabError
from resnet_viz.models import build_model, count_params, forward_flops
from resnet_viz.models.blocks import CSPStage, ResidualBlock
from resnet_viz.training.engine import Job, WorkerQueue


def residual_block(c, **kw):
    return lambda cin, cout, s: ResidualBlock(cin, cout, s, **kw)


@pytest.mark.parametrize("gamma", [0.1, 0.25, 0.5, 0.75, 0.9])
@pytest.mark.parametrize("fusion", ["last", "first"])
def test_csp_stage_shapes_and_split(gamma, fusion):
    stage = CSPStage(16, 32, 2, 3, gamma, fusion, residual_block(0), batch_norm=True)
    y = stage(torch.randn(2, 16, 14, 14))
    assert y.shape == (2, 32, 7, 7)
    assert stage.c_blocks == max(1, round(gamma * 32)) and stage.c_blocks + stage.c_bypass == 32
    assert all(b.F[0].in_channels == stage.c_blocks for b in stage.blocks)


def test_csp_parameter_counts_follow_gamma_and_undercut_the_full_stage():
    full = sum(p.numel() for p in torch.nn.Sequential(*(ResidualBlock(32, 32) for _ in range(3))).parameters())
    counts = []
    for gamma in (0.25, 0.5, 0.75):
        stage = CSPStage(32, 32, 1, 3, gamma, "last", residual_block(0), batch_norm=True)
        c = stage.c_blocks
        expected = 3 * (2 * (9 * c * c) + 4 * c) + (c * c + 2 * c)  # blocks (convs + BN) + transition (1x1 + BN)
        assert sum(p.numel() for p in stage.parameters()) == expected
        counts.append(expected)
    assert counts == sorted(counts) and counts[1] < full
    assert count_params(build_model(ModelSpec(depth=20, csp=0.5))) < count_params(build_model(ModelSpec(depth=20)))
    assert forward_flops(ModelSpec(depth=20, csp=0.5)) < forward_flops(ModelSpec(depth=20))


def test_csp_fusion_first_mixes_the_bypass_and_last_does_not():
    torch.manual_seed(0)
    for fusion, untouched in (("last", True), ("first", False)):
        stage = CSPStage(8, 8, 1, 1, 0.5, fusion, residual_block(0), batch_norm=False).eval()
        x = torch.rand(1, 8, 6, 6)
        y = stage(x)
        assert torch.equal(y[:, :4], x[:, :4]) is untouched  # fusion last: the bypass channels pass as they are


def test_rezero_block_is_the_identity_at_initialisation():
    block = ResidualBlock(16, 16, alpha=0.0, learn_alpha=True, batch_norm=False)
    x = torch.relu(torch.randn(4, 16, 8, 8))
    assert torch.equal(block(x), x)
    assert not torch.equal(ResidualBlock(16, 16, batch_norm=False)(x), x)


def test_beta_half_shrinks_the_identity_path_by_half_per_block():
    torch.manual_seed(0)
    model = build_model(ModelSpec(depth=20, beta=0.5, batch_norm=False)).eval()
    stage = model.stages[0]
    for block in stage:
        for conv in block.F.convs:  # silence F so only the skip path carries the signal
            torch.nn.init.zeros_(conv.weight)
            torch.nn.init.zeros_(conv.bias)
    x = torch.rand(2, 16, 14, 14)
    out = x
    for k, block in enumerate(stage, 1):
        out = block(out)
        torch.testing.assert_close(out, x * 0.5**k)


def test_per_channel_scales_have_one_value_per_channel():
    block = ResidualBlock(8, 8, alpha=0.3, beta=0.7, learn_alpha=True, learn_beta=True, per_channel=True)
    assert block.alpha.weight.shape == (1, 8, 1, 1) and block.beta.weight.shape == (1, 8, 1, 1)
    fixed = ResidualBlock(8, 8, alpha=0.3)
    assert "alpha.weight" not in dict(fixed.named_parameters()) and "alpha.weight" in fixed.state_dict()


def test_fixed_scales_never_change_and_learnable_ones_do():
    specs = [ModelSpec(depth=8, alpha=0.5, beta=0.8, name="fixed"),
             ModelSpec(depth=8, alpha=0.0, learn_alpha=True, learn_beta=True, name="learned")]
    snap = Job(specs, TrainSpec(steps=8, batch_size=32, eval_size=50, eval_every=8),
               queue=WorkerQueue(1)).run_blocking()
    fixed, learned = snap.models
    assert np.all(fixed.alpha == 0.5) and np.allclose(fixed.beta, 0.8)
    assert np.abs(learned.alpha[-1]).max() > 0 and not np.allclose(learned.beta[-1], 1.0)
    assert np.isfinite(fixed.ratio).all() and (fixed.ratio > 0).all()
    plain = Job([ModelSpec(depth=8, skip=False)], TrainSpec(steps=2, batch_size=16, eval_size=20),
                queue=WorkerQueue(1)).run_blocking().models[0]
    assert np.isnan(plain.ratio).all() and np.isnan(plain.alpha).all()


@pytest.mark.parametrize("kw, key", [
    (dict(csp=0.05), "error.csp"), (dict(csp=0.95), "error.csp"), (dict(csp=float("nan")), "error.csp"),
    (dict(alpha=6), "error.scale"), (dict(beta=-5.5), "error.scale"), (dict(alpha=float("inf")), "error.scale"),
    (dict(scale="pixel"), "error.scale_kind"), (dict(csp=0.5, csp_fusion="middle"), "error.csp_fusion"),
])
def test_out_of_range_scales_and_split_are_clear_errors(kw, key):
    with pytest.raises(LabError) as e:
        ModelSpec(**kw)
    assert e.value.key == key and str(list(kw.values())[-1]) in str(e.value)


def test_cli_summary_has_final_scales_and_csp(tmp_path):
    import subprocess
    import sys
    from pathlib import Path
    r = subprocess.run([sys.executable, "-m", "resnet_viz", "train", "--model", "depth=8,alpha=0,learn_alpha=true",
                        "--model", "depth=8,csp=0.5,csp_fusion=first", "--model", "plain-8", "--steps", "3",
                        "--quiet", "--out", str(tmp_path)], cwd=Path(__file__).parent.parent, capture_output=True,
                       text=True, timeout=hang_s(300))
    assert r.returncode == 0, r.stderr
    rezero, csp, plain = json.loads((tmp_path / "summary.json").read_text())["models"]
    assert len(rezero["final_alpha"]) == 3 and rezero["final_alpha"] != [0.0, 0.0, 0.0]
    assert rezero["final_beta"] == [1.0, 1.0, 1.0]
    assert csp["csp"] == 0.5 and csp["csp_fusion"] == "first" and rezero["csp_fusion"] is None
    assert plain["final_alpha"] is None
