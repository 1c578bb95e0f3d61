"""He et al.'s ImageNet ResNets (Table 1), as torchvision builds them: the `resnet` family.

    stem: 7x7 conv, 64, stride 2 -> 3x3 max pool, stride 2        (or the small-image stem: 3x3 conv, no pool)
    four stages of blocks, 64/128/256/512 wide (x4 at the output of a bottleneck), stages 2-4 at stride 2
    global average pool -> fully connected

ResNet-18/34 use basic blocks, 50/101/152 bottlenecks. Skip connections off gives the plain twins of He et
al.'s Table 2 and Fig. 4 (plain-18/34/50). `width` multiplies every stage's channels, so a CPU can train them
on 28x28 digits; at width 1 with the 7x7 stem, 3x224x224 input and 1000 classes, the parameter count is
exactly torchvision's (shortcut B is its `downsample`).
"""
from torch import nn

from .blocks import EXPANSION, Basic, Bottleneck, conv3x3, norm, stage
from .net import StagedNet, he_init
from .ops import stage_ops, stem_ops

LAYERS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
STAGE_WIDTHS = (64, 128, 256, 512)  # the 3x3 convs' channels; a bottleneck's output is 4x this


def branch_for(depth: int):
    return Basic if depth < 50 else Bottleneck


def stage_channels(spec) -> tuple[int, ...]:
    """Every stage's output channels, after the width multiplier (a bottleneck stage ends 4x wider)."""
    expansion = EXPANSION if branch_for(spec.depth) is Bottleneck else 1
    return tuple(max(1, round(c * spec.width)) * expansion for c in STAGE_WIDTHS)


class ResNet(StagedNet):
    def __init__(self, spec, in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.spec = spec
        c0 = max(1, round(STAGE_WIDTHS[0] * spec.width))
        bias = not spec.batch_norm
        if spec.stem == "imagenet":
            self.stem = nn.Sequential(nn.Conv2d(in_channels, c0, 7, stride=2, padding=3, bias=bias),
                                      norm(c0, spec.batch_norm), nn.ReLU(inplace=True),
                                      nn.MaxPool2d(3, stride=2, padding=1))
        else:
            self.stem = nn.Sequential(conv3x3(in_channels, c0, spec.stem_stride, bias=bias),
                                      norm(c0, spec.batch_norm), nn.ReLU(inplace=True))
        branch, c_in, stages = branch_for(spec.depth), c0, []
        for i, (n, c_out) in enumerate(zip(LAYERS[spec.depth], stage_channels(spec), strict=True)):
            stages.append(stage(c_in, c_out, 1 if i == 0 else 2, n, spec, branch))
            c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes))
        if spec.init == "he":
            he_init(self)

    def table_units(self):
        return stem_ops(self) + stage_ops(self)
