"""He et al.'s CIFAR-style 6n+2 network (Section 4.2), for 28x28 digits: the `cifar` family.

stem conv -> stage 1 (n blocks, 16 ch) -> stage 2 (n blocks, 32 ch, stride 2) -> stage 3 (n blocks, 64 ch,
stride 2) -> global average pool -> linear. Depth 6n+2 counts the stem, 2 convs per block and the head.
"""
from torch import nn

from .blocks import Basic, conv3x3, norm, stage
from .net import StagedNet, he_init
from .ops import stage_ops, stem_ops


class CifarResNet(StagedNet):
    def __init__(self, spec, in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.spec = spec
        n, (c1, c2, c3) = spec.cifar_layout()
        self.stem = nn.Sequential(conv3x3(in_channels, c1, spec.stem_stride, bias=not spec.batch_norm),
                                  norm(c1, spec.batch_norm), nn.ReLU(inplace=True))
        self.stages = nn.Sequential(stage(c1, c1, 1, n, spec, Basic), stage(c1, c2, 2, n, spec, Basic),
                                    stage(c2, c3, 2, n, spec, Basic))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c3, num_classes))
        if spec.init == "he":
            he_init(self)

    def table_units(self):
        return stem_ops(self) + stage_ops(self)
