"""LeCun et al.'s LeNet-5 (1998), the first case study of the course notes: the `lenet5` family.

    C1 5x5 conv, 6 -> S2 2x2 avg pool -> C3 5x5 conv, 16 -> S4 2x2 avg pool -> C5 5x5 conv, 120 -> F6 84 -> 10

with tanh, as in the paper. Adapted: the 28x28 digit is zero-padded to 32x32 (C1's padding of 2, as the paper
padded MNIST's 20x20 digits into a 32x32 field); C3 connects to all six C1 maps (the paper's sparse table saved
parameters in 1998, not accuracy); S2/S4 are plain averages (the paper's had a trainable scale and bias); the
output is a linear layer, not the paper's RBF units. 61,706 parameters.
"""
from collections import OrderedDict

from torch import nn

from .net import ClassicNet, he_init


class LeNet5(ClassicNet):
    head_names = ("F6", "output")

    def __init__(self, spec, in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.spec = spec
        bn = spec.batch_norm

        def conv(c_in, c_out, **kw):
            return [nn.Conv2d(c_in, c_out, 5, bias=not bn, **kw)] + ([nn.BatchNorm2d(c_out)] if bn else []) + [
                nn.Tanh()]

        self.stem = nn.Identity()
        self.stages = nn.Sequential(OrderedDict([
            ("C1", nn.Sequential(*conv(in_channels, 6, padding=2), nn.AvgPool2d(2))),
            # adaptive: exactly S4's 2x2 average on 28x28 digits, and any other input still ends at 5x5 for C5
            ("C3", nn.Sequential(*conv(6, 16), nn.AdaptiveAvgPool2d(5))),
            ("C5", nn.Sequential(*conv(16, 120))),
        ]))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, num_classes))
        if spec.init == "he":
            he_init(self)

    def pool_name(self, index, module):
        return ("S2", "S4")[index - 1]
