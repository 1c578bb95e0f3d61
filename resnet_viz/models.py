"""build_model(spec): the CIFAR-style 6n+2 network of He et al. for 28x28 digits, and its costs.

stem conv -> stage 1 (n blocks, 16 ch) -> stage 2 (n blocks, 32 ch, stride 2) -> stage 3 (n blocks, 64 ch,
stride 2) -> global average pool -> linear. Depth 6n+2 counts the stem, 2 convs per block and the head.
"""
from functools import cache

import torch
from torch import nn

from .blocks import CSPStage, PlainBlock, ResidualBlock, conv3x3, norm
from .config import ModelSpec

NUM_CLASSES = 10
IMAGE_SHAPE = (1, 28, 28)


class CifarResNet(nn.Module):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.spec = spec
        c1, c2, c3 = spec.stage_channels()
        self.stem = nn.Sequential(conv3x3(1, c1, spec.stem_stride, bias=not spec.batch_norm),
                                  norm(c1, spec.batch_norm), nn.ReLU(inplace=True))
        self.stages = nn.Sequential(
            self._stage(c1, c1, 1, spec), self._stage(c1, c2, 2, spec), self._stage(c2, c3, 2, spec))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c3, NUM_CLASSES))
        if spec.init == "he":
            self._he_init()

    @staticmethod
    def _stage(c_in: int, c_out: int, stride: int, spec: ModelSpec) -> nn.Module:
        def make_block(cin, cout, s):
            if spec.skip:
                return ResidualBlock(cin, cout, s, spec.batch_norm, spec.shortcut, spec.alpha, spec.beta,
                                     spec.learn_alpha, spec.learn_beta, spec.scale == "channel")
            return PlainBlock(cin, cout, s, spec.batch_norm)

        n = spec.blocks_per_stage
        if spec.csp:
            return CSPStage(c_in, c_out, stride, n, spec.csp, spec.csp_fusion, make_block, spec.batch_norm)
        return nn.Sequential(*(make_block(c_in, c_out, stride) if i == 0 else make_block(c_out, c_out, 1)
                               for i in range(n)))

    def _he_init(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def blocks(self) -> list[tuple[str, nn.Module]]:
        """(name, block) in depth order; names like 's2.b3' (stage 2, block 3), counted from 1."""
        return [(f"s{si}.b{bi}", b) for si, stage in enumerate(self.stages, 1) for bi, b in enumerate(stage, 1)]

    def weight_layers(self) -> list[tuple[str, nn.Parameter]]:
        """The weight layers on the main path, input to output (stem, two convs per block, head, and for CSP
        stages their downsampling and transition convs): the rows of the gradient-norm heatmap. Projection
        shortcuts are off the main path, so left out; without CSP there are exactly `depth` rows."""
        layers = [("stem", self.stem[0].weight)]
        for si, stage in enumerate(self.stages, 1):
            if isinstance(stage, CSPStage) and isinstance(stage.down, nn.Sequential):
                layers.append((f"s{si}.down", stage.down[0].weight))
            for bi, block in enumerate(stage, 1):
                layers += [(f"s{si}.b{bi}.conv{i}", conv.weight) for i, conv in enumerate(block.F.convs, 1)]
            if isinstance(stage, CSPStage):
                layers.append((f"s{si}.transition", stage.transition[0].weight))
        layers.append(("head", self.head[2].weight))
        return layers


def build_model(spec: ModelSpec) -> CifarResNet:
    return CifarResNet(spec)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@cache
def spec_params(spec: ModelSpec) -> int:
    return count_params(build_model(spec))


@cache
def forward_flops(spec: ModelSpec) -> int:
    """FLOPs of one image's forward pass: 2 x multiply-adds of every conv and linear layer (BN, ReLU and the
    zero-pad shortcut are a rounding error and are left out, as in the papers)."""
    model = build_model(spec)
    total = 0

    def count(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            total += 2 * output.numel() * k
        elif isinstance(module, nn.Linear):
            total += 2 * module.in_features * module.out_features

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.inference_mode():
        model.eval()(torch.zeros(1, *IMAGE_SHAPE))
    for h in hooks:
        h.remove()
    return total
