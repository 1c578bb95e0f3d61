"""The building blocks: a plain block H(x) = F(x) and a residual block H(x) = F(x) + shortcut(x).

Both share the same F (conv-BN-ReLU-conv-BN), so a plain and a residual net of one depth differ only by the
skip path, and with option-A shortcuts not even by one parameter.
"""
import torch
import torch.nn.functional as nnf
from torch import nn


def conv3x3(c_in: int, c_out: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=bias)


def norm(channels: int, batch_norm: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if batch_norm else nn.Identity()


class Residual(nn.Sequential):
    """F(x): the two-conv branch every block has. Without batch norm the convs carry a bias instead."""

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


class ZeroPadShortcut(nn.Module):
    """He et al.'s option A: subsample, then pad the new channels with zeros. No parameters."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.stride, self.extra = stride, c_out - c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::self.stride, ::self.stride]
        return nnf.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x


def projection(c_in: int, c_out: int, stride: int, batch_norm: bool) -> nn.Module:
    """He et al.'s option B: a strided 1x1 conv where the shape changes."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=not batch_norm), norm(c_out, batch_norm))


def shortcut(c_in: int, c_out: int, stride: int, kind: str, batch_norm: bool) -> nn.Module:
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    if kind == "A":
        return ZeroPadShortcut(c_in, c_out, stride)
    return projection(c_in, c_out, stride, batch_norm)


class PlainBlock(nn.Module):
    """H(x) = ReLU(F(x)): the block must learn the whole mapping, identity included."""

    skip = False

    def __init__(self, c_in: int, c_out: int, stride: int = 1, batch_norm: bool = True):
        super().__init__()
        self.F = Residual(c_in, c_out, stride, batch_norm)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.F(x))


class ResidualBlock(nn.Module):
    """H(x) = ReLU(F(x) + shortcut(x)): the block only learns what to add to its input."""

    skip = True

    def __init__(self, c_in: int, c_out: int, stride: int = 1, batch_norm: bool = True, shortcut_kind: str = "A"):
        super().__init__()
        self.F = Residual(c_in, c_out, stride, batch_norm)
        self.shortcut = shortcut(c_in, c_out, stride, shortcut_kind, batch_norm)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.F(x) + self.shortcut(x))
