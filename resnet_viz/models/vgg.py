"""Simonyan and Zisserman's VGG (2014), the third case study: the `vgg` family, 11/13/16/19 weight layers.

Five stages of 3x3 convs (64, 128, 256, 512, 512 wide, times `width`), then three fully connected layers
(4096, 4096, classes). Adapted to 28x28 digits: the paper halves the maps after every stage (224 -> 7); here
only the first three stages end in a 2x2 max pool (28 -> 14 -> 7 -> 3), stages 4 and 5 work at 3x3, and a
global average pool feeds fc1 (torchvision's VGG pools to 7x7 and feeds 25,088 numbers to fc1). Batch norm
after every conv is a setting (on by default: without it VGG-16 needs a careful init and many steps, as the
paper's staged training of VGG-11 first shows). No dropout.
"""
from collections import OrderedDict

from torch import nn

from .net import ClassicNet, he_init

CONFIGS = {  # convs per stage (Table 1 of the paper, columns A, B, D, E)
    11: (1, 1, 2, 2, 2),
    13: (2, 2, 2, 2, 2),
    16: (2, 2, 3, 3, 3),
    19: (2, 2, 4, 4, 4),
}
STAGE_WIDTHS = (64, 128, 256, 512, 512)
POOLED_STAGES = 3  # stages that end in a max pool on 28x28 digits
HIDDEN = 4096


class VGG(ClassicNet):
    head_names = ("fc1", "fc2", "fc3")

    def __init__(self, spec, in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.spec = spec
        bn = spec.batch_norm
        stages, c_in = [], in_channels
        for i, (n, width) in enumerate(zip(CONFIGS[spec.depth], STAGE_WIDTHS, strict=True), 1):
            c_out, layers = max(1, round(width * spec.width)), []
            for _ in range(n):
                layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=not bn),
                           *([nn.BatchNorm2d(c_out)] if bn else []), nn.ReLU(inplace=True)]
                c_in = c_out
            if i <= POOLED_STAGES:
                layers.append(nn.MaxPool2d(2))
            stages.append((f"s{i}", nn.Sequential(*layers)))
        hidden = max(1, round(HIDDEN * spec.width))
        self.stem = nn.Identity()
        self.stages = nn.Sequential(OrderedDict(stages))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(c_in, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, num_classes))
        if spec.init == "he":
            he_init(self)

    def pool_name(self, index, module):
        return f"s{index}.pool" if index <= POOLED_STAGES else "avgpool"
