"""The building blocks: a plain block H(x) = F(x) and a residual block H(x) = alpha F(x) + beta shortcut(x).

F, the branch, is one of two, with one signature (c_in, c_out, stride, batch_norm), as in torchvision:
- `Basic`: 3x3 conv - BN - ReLU - 3x3 conv - BN (ResNet-18/34 and He et al.'s CIFAR nets);
- `Bottleneck`: 1x1 conv down to c_out/4 - 3x3 conv (the stride is here, "ResNet v1.5" as torchvision) -
  1x1 conv up to c_out, each with BN, ReLU between (ResNet-50 and deeper: the 1x1 convs make the 3x3 cheap).
A plain and a residual block of one shape share their F, so they differ only by the skip path, and with
option-A shortcuts not even by one parameter. The shortcut is built in one place, `shortcut()`.
"""
import torch
import torch.nn.functional as nnf
from torch import nn

EXPANSION = 4  # a bottleneck's output channels / its inner width (He et al. Table 1)


def conv3x3(c_in: int, c_out: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=bias)


def conv1x1(c_in: int, c_out: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 1, stride=stride, bias=bias)


def norm(channels: int, batch_norm: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if batch_norm else nn.Identity()


class Basic(nn.Sequential):
    """F(x) of a basic block: two 3x3 convs. Without batch norm the convs carry a bias instead."""

    def __init__(self, c_in: int, c_out: int, stride: int, batch_norm: bool):
        super().__init__(
            conv3x3(c_in, c_out, stride, bias=not batch_norm), norm(c_out, batch_norm), nn.ReLU(inplace=True),
            conv3x3(c_out, c_out, 1, bias=not batch_norm), norm(c_out, batch_norm),
        )

    @property
    def convs(self) -> list[nn.Conv2d]:
        return [self[0], self[3]]

    @property
    def last_norm(self) -> nn.Module:
        return self[4]


class Bottleneck(nn.Sequential):
    """F(x) of a bottleneck block: 1x1 reduce to c_out/4, 3x3 (strided), 1x1 expand back to c_out."""

    def __init__(self, c_in: int, c_out: int, stride: int, batch_norm: bool):
        mid = max(1, c_out // EXPANSION)
        super().__init__(
            conv1x1(c_in, mid, bias=not batch_norm), norm(mid, batch_norm), nn.ReLU(inplace=True),
            conv3x3(mid, mid, stride, bias=not batch_norm), norm(mid, batch_norm), nn.ReLU(inplace=True),
            conv1x1(mid, c_out, bias=not batch_norm), norm(c_out, batch_norm),
        )

    @property
    def convs(self) -> list[nn.Conv2d]:
        return [self[0], self[3], self[6]]

    @property
    def last_norm(self) -> nn.Module:
        return self[7]


BRANCHES = {"basic": Basic, "bottleneck": Bottleneck}


class ZeroPadShortcut(nn.Module):
    """He et al.'s option A: subsample, then pad the new channels with zeros. No parameters."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.stride, self.extra = stride, c_out - c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::self.stride, ::self.stride]
        return nnf.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x


def projection(c_in: int, c_out: int, stride: int, batch_norm: bool) -> nn.Module:
    """He et al.'s option B: a strided 1x1 conv where the shape changes (torchvision's `downsample`)."""
    return nn.Sequential(conv1x1(c_in, c_out, stride, bias=not batch_norm), norm(c_out, batch_norm))


def shortcut(c_in: int, c_out: int, stride: int, kind: str, batch_norm: bool) -> nn.Module:
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    if kind == "A":
        return ZeroPadShortcut(c_in, c_out, stride)
    return projection(c_in, c_out, stride, batch_norm)


class PlainBlock(nn.Module):
    """H(x) = ReLU(F(x)): the block must learn the whole mapping, identity included."""

    skip = False

    def __init__(self, c_in: int, c_out: int, stride: int = 1, batch_norm: bool = True, branch=Basic):
        super().__init__()
        self.F = branch(c_in, c_out, stride, batch_norm)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.F(x))


class Scale(nn.Module):
    """A factor for one path of a block: fixed (a buffer, never trained) or learnable (a parameter); one
    number per block or one per channel."""

    def __init__(self, value: float, channels: int, learnable: bool, per_channel: bool):
        super().__init__()
        weight = torch.full((1, channels, 1, 1) if per_channel else (1,), float(value))
        if learnable:
            self.weight = nn.Parameter(weight)
        else:
            self.register_buffer("weight", weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * x


class ResidualBlock(nn.Module):
    """H(x) = ReLU(alpha * F(x) + beta * shortcut(x)): the block only learns what to add to its input.
    alpha = beta = 1 is He et al.'s block; alpha starting at 0 and learnable is ReZero."""

    skip = True

    def __init__(self, c_in: int, c_out: int, stride: int = 1, batch_norm: bool = True, shortcut_kind: str = "A",
                 alpha: float = 1.0, beta: float = 1.0, learn_alpha: bool = False, learn_beta: bool = False,
                 per_channel: bool = False, branch=Basic):
        super().__init__()
        self.F = branch(c_in, c_out, stride, batch_norm)
        self.shortcut = shortcut(c_in, c_out, stride, shortcut_kind, batch_norm)
        self.alpha = Scale(alpha, c_out, learn_alpha, per_channel)
        self.beta = Scale(beta, c_out, learn_beta, per_channel)
        self.relu = nn.ReLU(inplace=True)
        self.observer = None  # probes set this to see both paths: observer(alpha*F(x), beta*x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual, identity = self.alpha(self.F(x)), self.beta(self.shortcut(x))
        if self.observer is not None:
            self.observer(residual, identity)
        return self.relu(residual + identity)


def block_maker(spec, branch=Basic):
    """make(c_in, c_out, stride): the block a spec asks for, plain or residual, with the given branch."""
    def make(c_in: int, c_out: int, stride: int) -> nn.Module:
        if spec.skip:
            return ResidualBlock(c_in, c_out, stride, spec.batch_norm, spec.shortcut, spec.alpha, spec.beta,
                                 spec.learn_alpha, spec.learn_beta, spec.scale == "channel", branch)
        return PlainBlock(c_in, c_out, stride, spec.batch_norm, branch)
    return make


class CSPStage(nn.Module):
    """Cross-stage partial stage (CSPNet): after an optional downsampling conv, split the channels; one part
    bypasses the stage, the other goes through the blocks and a 1x1 transition, then both are concatenated.
    fusion "last": transition on the block path, then concat; "first": concat, then a transition on all."""

    def __init__(self, c_in: int, c_out: int, stride: int, blocks: int, gamma: float, fusion: str,
                 make_block, batch_norm: bool):
        super().__init__()
        self.down = (nn.Sequential(conv3x3(c_in, c_out, stride, bias=not batch_norm), norm(c_out, batch_norm),
                                   nn.ReLU(inplace=True))
                     if stride != 1 or c_in != c_out else nn.Identity())
        self.c_blocks = max(1, round(gamma * c_out))
        self.c_bypass = c_out - self.c_blocks
        self.blocks = nn.Sequential(*(make_block(self.c_blocks, self.c_blocks, 1) for _ in range(blocks)))
        width = self.c_blocks if fusion == "last" else c_out
        self.transition = nn.Sequential(nn.Conv2d(width, width, 1, bias=not batch_norm), norm(width, batch_norm),
                                        nn.ReLU(inplace=True))
        self.fusion = fusion

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bypass, through = torch.split(self.down(x), [self.c_bypass, self.c_blocks], dim=1)
        if self.fusion == "last":
            return torch.cat((bypass, self.transition(self.blocks(through))), dim=1)
        return self.transition(torch.cat((bypass, self.blocks(through)), dim=1))

    def __iter__(self):
        return iter(self.blocks)


def stage(c_in: int, c_out: int, stride: int, n: int, spec, branch=Basic) -> nn.Module:
    """n blocks from c_in to c_out channels, the first one strided, or a CSP stage of them (spec.csp)."""
    make = block_maker(spec, branch)
    if spec.csp:
        return CSPStage(c_in, c_out, stride, n, spec.csp, spec.csp_fusion, make, spec.batch_norm)
    return nn.Sequential(*(make(c_in, c_out, stride) if i == 0 else make(c_out, c_out, 1) for i in range(n)))
