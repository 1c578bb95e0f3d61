"""Short descriptions of what a layer does, for the layer table and the diagram: plain dicts, no words (the
words come from the `op.*` catalogue keys, so both languages say the same thing).

    {"kind": "conv", "k": 7, "c": 64, "stride": 2}         7x7 conv to 64 channels, stride 2
    {"kind": "bottleneck", "c": 256, "mid": 64, ...}       1x1 to 64, 3x3, 1x1 to 256, with its skip path
"""
from torch import nn

from .blocks import Bottleneck, CSPStage, PlainBlock, ResidualBlock, ZeroPadShortcut


def describe(module: nn.Module) -> dict:
    if isinstance(module, nn.Conv2d):
        return {"kind": "conv", "k": module.kernel_size[0], "c": module.out_channels, "stride": module.stride[0]}
    if isinstance(module, nn.MaxPool2d):
        return {"kind": "maxpool", "k": _int(module.kernel_size), "stride": _int(module.stride)}
    if isinstance(module, nn.AvgPool2d):
        return {"kind": "avgpool", "k": _int(module.kernel_size), "stride": _int(module.stride)}
    if isinstance(module, nn.AdaptiveAvgPool2d):
        size = _int(module.output_size)
        return {"kind": "gap"} if size == 1 else {"kind": "adaptive_pool", "size": size}
    if isinstance(module, nn.Linear):
        return {"kind": "fc", "c": module.out_features}
    if isinstance(module, (PlainBlock, ResidualBlock)):
        convs = module.F.convs
        op = {"kind": "bottleneck" if isinstance(module.F, Bottleneck) else "basic", "c": convs[-1].out_channels,
              "mid": convs[0].out_channels, "stride": max(c.stride[0] for c in convs), "skip": module.skip}
        if module.skip:
            s = module.shortcut
            op["shortcut"] = ("identity" if isinstance(s, nn.Identity) else
                              "A" if isinstance(s, ZeroPadShortcut) else "B")
        return op
    raise TypeError(f"no description for {type(module).__name__}")


def _int(v) -> int:
    return v if isinstance(v, int) else v[0]


def conv_unit(name: str, seq: nn.Sequential) -> tuple[str, list, dict]:
    """A conv with its BN and activation as one row, described by the conv."""
    op = describe(seq[0])
    if any(isinstance(m, nn.BatchNorm2d) for m in seq):
        op["bn"] = True
    if any(isinstance(m, nn.ReLU) for m in seq):
        op["act"] = "relu"
    return name, list(seq), op


def stem_ops(net) -> list[tuple[str, list, dict]]:
    """The stem's rows: the conv (with BN, ReLU), and a max pool where it has one."""
    parts = list(net.stem)
    rows = [conv_unit("stem", nn.Sequential(*parts[:3]))]
    rows += [("pool", [m], describe(m)) for m in parts[3:]]
    return rows


def stage_ops(net) -> list[tuple[str, list, dict]]:
    """Every block (with a CSP stage's downsampling and transition convs), then the head: pool and fc."""
    rows = []
    for si, stage in enumerate(net.stages, 1):
        if isinstance(stage, CSPStage) and isinstance(stage.down, nn.Sequential):
            rows.append(conv_unit(f"s{si}.down", stage.down))
        rows += [(f"s{si}.b{bi}", [b], describe(b) | {"stage": si}) for bi, b in enumerate(stage, 1)]
        if isinstance(stage, CSPStage):
            rows.append(conv_unit(f"s{si}.transition", stage.transition))
    return rows + head_ops(net.head)


def head_ops(head: nn.Sequential) -> list[tuple[str, list, dict]]:
    pool, linear = head[0], head[-1]
    return [("avgpool", [pool], describe(pool)), ("fc", [linear], describe(linear))]
