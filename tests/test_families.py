"""The model families of the source material: names, settings per family, exact published sizes and costs,
bottleneck shapes, the layer table, and the shared interface every page relies on."""
import json

import pytest
import torch

from resnet_viz import cli
from resnet_viz.config import FAMILIES, RESNET_DEPTHS, LabError, ModelSpec, parse_name
from resnet_viz.models import build_model, count_params, layer_table
from resnet_viz.models.blocks import Bottleneck, PlainBlock, ResidualBlock

# torchvision's published num_params and GFLOPS (multiply-adds) for its ImageNet ResNets (weights metadata:
# ResNet18_Weights.IMAGENET1K_V1 ... ResNet152_Weights.IMAGENET1K_V1), 3x224x224 input, 1000 classes.
TORCHVISION = {18: (11_689_512, 1.814), 34: (21_797_672, 3.664), 50: (25_557_032, 4.089),
               101: (44_549_160, 7.801), 152: (60_192_808, 11.514)}
IMAGENET = dict(width=1.0, stem="imagenet", shortcut="B")


@pytest.mark.parametrize("depth", RESNET_DEPTHS)
def test_resnet_has_torchvisions_parameters_and_flops(depth):
    params, gmacs = TORCHVISION[depth]
    table = layer_table(ModelSpec(family="resnet", depth=depth, **IMAGENET), (3, 224, 224), 1000)
    assert table.params == params
    assert table.flops / 2 / 1e9 == pytest.approx(gmacs, rel=0.03)
    assert sum(r.params for r in table.rows) == table.params  # every parameter sits in one row
    assert sum(r.flops for r in table.rows) == table.flops
    # the plain twin has exactly the parameters of the residual net with option-A shortcuts
    plain = layer_table(ModelSpec(family="resnet", depth=depth, skip=False, width=1.0, stem="imagenet"),
                        (3, 224, 224), 1000)
    option_a = layer_table(ModelSpec(family="resnet", depth=depth, width=1.0, stem="imagenet", shortcut="A"),
                           (3, 224, 224), 1000)
    assert plain.params == option_a.params < params


def test_resnet50_layer_table_matches_the_paper():
    """He et al. Table 1: 7x7 conv stride 2 -> 112, 3x3 max pool -> 56, four bottleneck stages of 3/4/6/3 blocks
    with 256/512/1024/2048 outputs at 56/28/14/7, global average pool, fc."""
    table = layer_table(ModelSpec(family="resnet", depth=50, **IMAGENET), (3, 224, 224), 1000)
    rows = table.grouped()
    assert [r.name for r in rows] == ["stem", "pool", "s1", "s2", "s3", "s4", "avgpool", "fc"]
    assert rows[0].op == {"kind": "conv", "k": 7, "c": 64, "stride": 2, "bn": True, "act": "relu"}
    assert rows[0].shape == (64, 112, 112)
    assert rows[1].op["kind"] == "maxpool" and rows[1].shape == (64, 56, 56)
    for row, n, c, side in zip(rows[2:6], (3, 4, 6, 3), (256, 512, 1024, 2048), (56, 28, 14, 7), strict=True):
        assert row.count == n and row.op["kind"] == "bottleneck" and row.op["mid"] == c // 4
        assert row.shape == (c, side, side)
    assert rows[-1].shape == (1000,)


@pytest.mark.parametrize("depth,expected", [(20, 0.27), (32, 0.46), (44, 0.66), (56, 0.85), (110, 1.7)])
def test_cifar_nets_have_he_et_al_parameter_counts(depth, expected):
    """He et al. Table 6 (CIFAR-10, 3 input channels; option A): 0.27M, 0.46M, 0.66M, 0.85M, 1.7M."""
    params = layer_table(ModelSpec(depth=depth), (3, 32, 32), 10).params
    assert params / 1e6 == pytest.approx(expected, abs=0.01 if depth < 110 else 0.05)


def test_bottleneck_shapes_and_widths():
    f = Bottleneck(64, 256, 1, True)
    assert [c.kernel_size for c in f.convs] == [(1, 1), (3, 3), (1, 1)]
    assert [(c.in_channels, c.out_channels) for c in f.convs] == [(64, 64), (64, 64), (64, 256)]
    block = ResidualBlock(256, 512, 2, True, "B", branch=Bottleneck)
    assert block.F.convs[1].stride == (2, 2) and block.F.convs[0].stride == (1, 1)  # v1.5: stride in the 3x3
    y = block(torch.rand(2, 256, 14, 14))
    assert y.shape == (2, 512, 7, 7)
    assert PlainBlock(256, 512, 2, True, Bottleneck)(torch.rand(2, 256, 14, 14)).shape == (2, 512, 7, 7)


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_bottleneck_with_zeroed_last_bn_is_the_identity(shortcut):
    block = ResidualBlock(64, 64, 1, True, shortcut, branch=Bottleneck).eval()
    with torch.no_grad():
        block.F.last_norm.weight.zero_()
        block.F.last_norm.bias.zero_()
    x = torch.rand(2, 64, 7, 7)
    torch.testing.assert_close(block(x), x, rtol=0, atol=0)
    # and not without it
    fresh = ResidualBlock(64, 64, 1, True, shortcut, branch=Bottleneck).eval()
    assert not torch.allclose(fresh(x), x)


NAMES = {
    "resnet-18": ("resnet", 18, True), "resnet-34": ("resnet", 34, True), "resnet-50": ("resnet", 50, True),
    "resnet-101": ("resnet", 101, True), "resnet-152": ("resnet", 152, True), "plain-18": ("resnet", 18, False),
    "plain-34": ("resnet", 34, False), "plain-50": ("resnet", 50, False), "res-20": ("cifar", 20, True),
    "plain-56": ("cifar", 56, False), "lenet-5": ("lenet5", 5, False), "alexnet": ("alexnet", 8, False),
    "vgg-11": ("vgg", 11, False), "vgg-13": ("vgg", 13, False), "vgg-16": ("vgg", 16, False),
    "vgg-19": ("vgg", 19, False),
}


@pytest.mark.parametrize("name", NAMES)
def test_every_name_builds_its_model_and_names_it_back(name):
    family, depth, skip = NAMES[name]
    spec = ModelSpec(**parse_name(name))
    assert (spec.family, spec.depth, spec.skip) == (family, depth, skip)
    assert spec.name == name  # the default name is the name it was asked by
    assert cli.parse_model(name) == spec
    if depth <= 50:  # the deep ones are covered by the counts above; keep the suite quick
        net = build_model(spec)
        out = net(torch.randn(2, 1, 28, 28))
        assert out.shape == (2, 10) and torch.isfinite(out).all()
        layers = net.weight_layers()
        assert len(layers) == depth  # the rows of the gradient heatmap are the net's weight layers
        ids = {id(p) for p in net.parameters()}
        assert all(id(p) in ids for _, p in layers)
        assert len(net.blocks()) == len(net.block_slots()) > 0
        assert count_params(net) == layer_table(spec).params


def test_names_with_settings_and_bad_names():
    spec = cli.parse_model("resnet-50,width=0.5,stem=imagenet")
    assert (spec.family, spec.depth, spec.width, spec.stem, spec.stem_stride) == ("resnet", 50, 0.5, "imagenet", None)
    assert spec.name == "resnet-50-w0.5-7x7"
    assert cli.parse_model("vgg-16,batch_norm=false").name == "vgg-16-nobn"
    assert cli.parse_model("family=vgg,depth=11").name == "vgg-11"
    assert parse_name("vgg") is None and parse_name("lenet-7") is None and parse_name("resnet") is None
    assert parse_name("res-50") == {"family": "cifar", "depth": 50, "skip": True}  # res-N: always 6n+2
    for bad in ("resnet-20", "vgg-17", "plain-18,family=cifar"):
        with pytest.raises(Exception, match="(?i)depth"):
            cli.parse_model(bad)


@pytest.mark.parametrize("family,setting,value", [
    ("lenet5", "width", 0.5), ("lenet5", "skip", True), ("alexnet", "depth", 11), ("vgg", "shortcut", "B"),
    ("vgg", "alpha", 0.5), ("cifar", "stem", "imagenet"), ("vgg", "csp", 0.5),
])
def test_settings_that_do_not_apply_are_refused_by_name(family, setting, value):
    with pytest.raises(LabError) as e:
        ModelSpec(family=family, **{setting: value})
    assert e.value.key == "error.not_applicable" and e.value.params == {"setting": setting, "family": family}


def test_family_defaults_and_settings_that_do_not_apply_are_none():
    for family, meta in FAMILIES.items():
        spec = ModelSpec(family=family)
        assert spec.depth == meta.defaults["depth"] and spec.depth in meta.depths
        for key in ("shortcut", "width", "stem", "stem_stride"):
            assert (getattr(spec, key) is None) == (not spec.applies(key)), (family, key)
    # the 7x7 stem has its own stride: stem_stride then does not apply
    assert ModelSpec(family="resnet", stem="imagenet").stem_stride is None
    with pytest.raises(LabError):
        ModelSpec(family="resnet", stem="imagenet", stem_stride=1)
    with pytest.raises(LabError, match="family"):
        ModelSpec(family="densenet")
    # yesterday's specs are today's cifar specs, field for field
    assert ModelSpec() == ModelSpec(family="cifar", depth=20, skip=True, shortcut="A", width=1.0, batch_norm=True,
                                    init="he", stem_stride=2)


def test_summary_cli_text_and_json(capsys):
    assert cli.main(["summary", "--model", "resnet-50,width=1,stem=imagenet", "--input", "3x224x224",
                     "--classes", "1000"]) == 0
    text = capsys.readouterr().out
    assert "25,557,032" in text and "bottleneck [1×1, 64 | 3×3, 64 | 1×1, 256]" in text and "×3" in text
    assert "4.09G multiply-adds" in text
    assert cli.main(["summary", "--model", "lenet-5", "--model", "vgg-16", "--json"]) == 0
    lenet, vgg = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert lenet["params"] == 61_706 and [r["layer"] for r in lenet["rows"]][:3] == ["C1", "S2", "C3"]
    assert vgg["model"] == "vgg-16" and sum(r["params"] for r in vgg["rows"]) == vgg["params"]
    assert cli.main(["summary", "--model", "alexnet", "--lang", "zh"]) == 0
    assert "全连接" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [
    ["summary", "--model", "resnet-17"], ["summary", "--input", "3x224"], ["summary", "--input", "1x4x4"],
    ["summary", "--model", "lenet-5,stem=imagenet"],
])
def test_summary_cli_bad_input_is_one_line(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_sweep_cli_takes_the_resnet_family_and_refuses_its_missing_depths(tmp_path, capsys):
    assert cli.main(["sweep", "--family", "resnet", "--depths", "18,20", "--out", str(tmp_path)]) == 2
    assert "Depth 20 does not exist for the resnet family" in capsys.readouterr().err
