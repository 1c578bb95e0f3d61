"""Krizhevsky et al.'s AlexNet (2012), the second case study: the `alexnet` family.

    conv1 96 -> max pool -> conv2 256 -> max pool -> conv3 384 -> conv4 384 -> conv5 256 -> max pool
    -> fc6 4096 -> fc7 4096 -> fc8 classes                      (ReLU after every layer but the last)

The paper's widths (torchvision's single-GPU variant has 64/192/384/256/256) times `width`. Adapted to 28x28
digits: conv1 is 5x5 at stride 1 (the paper's 11x11 stride 4 would leave 7x7 maps after the first layer),
conv2's 5x5 and the three 3x3 convs keep their size, the first two max pools are 2x2 (28 -> 14 -> 7) and the
last the paper's 3x3 stride 2 (7 -> 3); an adaptive average pool to 3x3 lets other input sizes through. No
dropout and no local response normalisation: batch norm after every conv (a setting, on by default, as for
VGG) replaced LRN, and without it AlexNet learns far slower in a lesson (mean training loss of the last 20 of
120 steps 1.44 against 0.17 with it, on the bundled digits).
"""
from collections import OrderedDict

from torch import nn

from .net import ClassicNet, he_init

CHANNELS = (96, 256, 384, 384, 256)
HIDDEN = 4096


class AlexNet(ClassicNet):
    head_names = ("fc6", "fc7", "fc8")

    def __init__(self, spec, in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.spec = spec
        c = [max(1, round(x * spec.width)) for x in CHANNELS]
        hidden = max(1, round(HIDDEN * spec.width))
        bn = spec.batch_norm

        def conv(c_in, c_out, k, *pool):
            return nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=not bn),
                                 *([nn.BatchNorm2d(c_out)] if bn else []), nn.ReLU(inplace=True), *pool)

        self.stem = nn.Identity()
        self.stages = nn.Sequential(OrderedDict([
            ("conv1", conv(in_channels, c[0], 5, nn.MaxPool2d(2))),
            ("conv2", conv(c[0], c[1], 5, nn.MaxPool2d(2))),
            ("conv3", conv(c[1], c[2], 3)),
            ("conv4", conv(c[2], c[3], 3)),
            ("conv5", conv(c[3], c[4], 3, nn.MaxPool2d(3, stride=2))),
        ]))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(3), nn.Flatten(),
                                  nn.Linear(c[4] * 9, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, num_classes))
        if spec.init == "he":
            he_init(self)

    def pool_name(self, index, module):
        return ("pool1", "pool2", "pool5", "avgpool")[index - 1]
