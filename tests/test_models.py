import pytest
import torch

from resnet_viz.config import ModelSpec
from resnet_viz.models import NUM_CLASSES, build_model, count_params, forward_flops
from resnet_viz.models.blocks import PlainBlock, ResidualBlock, ZeroPadShortcut


def _block_input(c=16, hw=14, n=2):
    torch.manual_seed(0)
    return torch.randn(n, c, hw, hw)


# ---- blocks ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("batch_norm", [True, False])
@pytest.mark.parametrize("c_in,c_out,stride,hw_in,hw_out", [(16, 16, 1, 14, 14), (16, 32, 2, 14, 7), (32, 64, 2, 7, 4)])
def test_plain_block_shape(c_in, c_out, stride, hw_in, hw_out, batch_norm):
    x = _block_input(c_in, hw_in)
    block = PlainBlock(c_in, c_out, stride, batch_norm)
    y = block(x)
    assert y.shape == (x.shape[0], c_out, hw_out, hw_out)
    assert (y >= 0).all()  # ends in a ReLU


@pytest.mark.parametrize("kind", ["A", "B"])
@pytest.mark.parametrize("c_in,c_out,stride,hw_in,hw_out", [
    (16, 16, 1, 14, 14), (16, 32, 2, 14, 7), (32, 64, 2, 7, 4), (16, 16, 1, 7, 7)])
def test_residual_block_shape(kind, c_in, c_out, stride, hw_in, hw_out):
    x = _block_input(c_in, hw_in)
    block = ResidualBlock(c_in, c_out, stride, True, kind)
    y = block(x)
    assert y.shape == (x.shape[0], c_out, hw_out, hw_out)
    assert (y >= 0).all()


def test_shortcut_kinds():
    assert isinstance(ResidualBlock(16, 16, 1, True, "A").shortcut, torch.nn.Identity)
    assert isinstance(ResidualBlock(16, 16, 1, True, "B").shortcut, torch.nn.Identity)
    assert isinstance(ResidualBlock(16, 32, 2, True, "A").shortcut, ZeroPadShortcut)
    proj = ResidualBlock(16, 32, 2, True, "B").shortcut
    assert not isinstance(proj, (torch.nn.Identity, ZeroPadShortcut))
    assert count_params(proj) == 16 * 32 + 2 * 32  # 1x1 conv without bias + BN scale/shift
    assert count_params(ResidualBlock(16, 32, 2, True, "A").shortcut) == 0


@pytest.mark.parametrize("train_mode", [True, False])
def test_residual_block_with_zero_last_norm_is_identity(train_mode):
    block = ResidualBlock(16, 16, 1, batch_norm=True, shortcut_kind="A")
    with torch.no_grad():
        block.F.last_norm.weight.zero_()
        block.F.last_norm.bias.zero_()
    block.train(train_mode)
    x = torch.rand(4, 16, 14, 14)  # non-negative
    x_before = x.clone()
    y = block(x)
    torch.testing.assert_close(y, x_before, rtol=0, atol=0)
    torch.testing.assert_close(x, x_before, rtol=0, atol=0)  # input not modified in place


def test_residual_block_without_zeroed_norm_is_not_identity():
    # Guards the test above: a freshly initialised block does change its input.
    block = ResidualBlock(16, 16, 1, batch_norm=True, shortcut_kind="A")
    x = torch.rand(4, 16, 14, 14)
    assert not torch.allclose(block(x), x)


def test_plain_block_with_zero_last_norm_outputs_zero():
    block = PlainBlock(16, 16, 1, batch_norm=True)
    with torch.no_grad():
        block.F.last_norm.weight.zero_()
        block.F.last_norm.bias.zero_()
    y = block(torch.rand(2, 16, 7, 7))
    assert torch.count_nonzero(y) == 0


def test_zero_pad_shortcut_pads_and_subsamples():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5) + 1
    sc = ZeroPadShortcut(3, 7, 2)
    y = sc(x)
    assert y.shape == (2, 7, 3, 3)
    torch.testing.assert_close(y[:, :3], x[:, :, ::2, ::2])
    assert torch.count_nonzero(y[:, 3:]) == 0
    assert sum(p.numel() for p in sc.parameters()) == 0


def test_zero_pad_shortcut_stride_one_same_channels_is_identity():
    x = torch.randn(1, 4, 6, 6)
    torch.testing.assert_close(ZeroPadShortcut(4, 4, 1)(x), x)


def test_zero_pad_shortcut_matches_conv_output_size():
    # A stride-2 3x3 conv with padding 1 and the ::2 subsample must agree, odd sizes included.
    for hw in (28, 14, 7, 5):
        x = torch.randn(1, 16, hw, hw)
        block = ResidualBlock(16, 32, 2, True, "A")
        assert block.F(x).shape == block.shortcut(x).shape


# ---- parameter counts ------------------------------------------------------------------------------

def _expected_params(depth, c=(16, 32, 64), shortcut_b=False):
    """Hand count: 3x3 convs without bias, BN (scale+shift) after each conv, linear head."""
    n = (depth - 2) // 6
    conv_bn = lambda ci, co: 9 * ci * co + 2 * co  # noqa: E731
    total = conv_bn(1, c[0])
    c_prev = c[0]
    for ch in c:
        for i in range(n):
            total += conv_bn(c_prev, ch) + conv_bn(ch, ch)
            if shortcut_b and c_prev != ch:
                total += c_prev * ch + 2 * ch
            c_prev = ch
    return total + c[2] * NUM_CLASSES + NUM_CLASSES


@pytest.mark.parametrize("depth", [20, 56])
def test_plain_and_residual_a_have_equal_params(depth):
    plain = count_params(build_model(ModelSpec(depth=depth, skip=False)))
    res_a = count_params(build_model(ModelSpec(depth=depth, skip=True, shortcut="A")))
    res_b = count_params(build_model(ModelSpec(depth=depth, skip=True, shortcut="B")))
    assert plain == res_a == _expected_params(depth)
    assert res_b > res_a
    assert res_b == _expected_params(depth, shortcut_b=True)
    assert res_b - res_a == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)


def test_params_grow_with_depth_and_width():
    p = lambda **kw: count_params(build_model(ModelSpec(**kw)))  # noqa: E731
    assert p(depth=8) < p(depth=20) < p(depth=56)
    assert p(depth=20, width=0.5) < p(depth=20) < p(depth=20, width=2.0)


def test_no_batch_norm_uses_conv_bias():
    model = build_model(ModelSpec(depth=8, batch_norm=False))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.bias is not None for c in convs)


# ---- whole model -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kw", [
    dict(depth=8, stem_stride=2),
    dict(depth=8, stem_stride=1),
    dict(depth=14, width=0.5),
    dict(depth=8, batch_norm=False),
    dict(depth=8, skip=False, init="default"),
    dict(depth=8, shortcut="B", width=0.25),
])
def test_model_output_shape(kw):
    model = build_model(ModelSpec(**kw))
    out = model(torch.randn(3, 1, 28, 28))
    assert out.shape == (3, NUM_CLASSES)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("depth", [8, 20, 56, 110])
@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_weight_layers_count_equals_depth(depth, shortcut):
    model = build_model(ModelSpec(depth=depth, shortcut=shortcut))
    layers = model.weight_layers()
    assert len(layers) == depth
    names = [n for n, _ in layers]
    assert names[0] == "stem" and names[-1] == "head"
    assert len(set(names)) == depth
    assert len(model.blocks()) == 3 * ((depth - 2) // 6)


def test_weight_layers_are_model_parameters():
    model = build_model(ModelSpec(depth=14))
    ids = {id(p) for p in model.parameters()}
    assert all(id(p) in ids for _, p in model.weight_layers())


def test_block_names():
    model = build_model(ModelSpec(depth=14))
    assert [n for n, _ in model.blocks()] == ["s1.b1", "s1.b2", "s2.b1", "s2.b2", "s3.b1", "s3.b2"]
    plain = build_model(ModelSpec(depth=14, skip=False))
    assert all(isinstance(b, PlainBlock) for _, b in plain.blocks())
    assert all(isinstance(b, ResidualBlock) for _, b in model.blocks())


def test_forward_flops_positive_and_growing():
    f8, f20, f56 = (forward_flops(ModelSpec(depth=d)) for d in (8, 20, 56))
    assert 0 < f8 < f20 < f56
    # A plain and an option-A residual net do the same conv work.
    assert forward_flops(ModelSpec(depth=20, skip=False)) == f20
    # Projections add work; a stride-1 stem means ~4x larger maps.
    assert forward_flops(ModelSpec(depth=20, shortcut="B")) > f20
    assert forward_flops(ModelSpec(depth=20, stem_stride=1)) > 3.5 * f20


def test_forward_flops_exact_for_smallest_net():
    # depth 8, stem stride 2: 14x14 stem output, stages at 14, 7, 4.
    mac = 9 * 1 * 16 * 14 * 14
    mac += 2 * 9 * 16 * 16 * 14 * 14
    mac += 9 * 16 * 32 * 7 * 7 + 9 * 32 * 32 * 7 * 7
    mac += 9 * 32 * 64 * 4 * 4 + 9 * 64 * 64 * 4 * 4
    mac += 64 * 10
    assert forward_flops(ModelSpec(depth=8)) == 2 * mac


def test_same_seed_same_init_for_plain_and_residual():
    torch.manual_seed(3)
    plain = build_model(ModelSpec(depth=8, skip=False))
    torch.manual_seed(3)
    res = build_model(ModelSpec(depth=8, skip=True))
    for (_, a), (_, b) in zip(plain.weight_layers(), res.weight_layers()):
        assert torch.equal(a, b)
