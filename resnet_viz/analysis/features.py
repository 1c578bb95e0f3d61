"""What each block of a model sees of one digit: its output channels and, for a residual block, the two
paths that were added, alpha*F(x) and beta*x, as plain numpy."""
import threading
from dataclasses import dataclass

import numpy as np
import torch

from ..data.arrays import MNIST_STATS, normalise
from ..models import ResidualBlock

# Hooks belong to the module, and one model may be shown to several viewers of a session at once: one at a
# time (a pass over one digit takes milliseconds).
_LOCK = threading.Lock()


@dataclass(frozen=True)
class BlockMaps:
    name: str  # s2.b3 = stage 2, block 3; a classic net's conv stage: C1, conv2, s3
    output: np.ndarray  # (C, H, W): H, what the next block gets
    residual: np.ndarray | None  # alpha*F(x), residual blocks only
    identity: np.ndarray | None  # beta*x after the shortcut, residual blocks only

    @property
    def mean(self) -> float:
        return float(self.output.mean())

    @property
    def std(self) -> float:
        return float(self.output.std())


def block_maps(net, digit: np.ndarray, stats: tuple[float, float] = MNIST_STATS) -> list[BlockMaps]:
    """Every block's maps for one (28, 28) uint8 digit, input to output (`stats`: the training (mean, std))."""
    blocks = net.blocks()
    outputs, paths = {}, {}

    def keep_output(name):
        return lambda module, inputs, output: outputs.__setitem__(name, output[0].float().numpy().copy())

    def keep_paths(name):
        return lambda residual, identity: paths.__setitem__(
            name, (residual[0].float().numpy().copy(), identity[0].float().numpy().copy()))

    x = normalise(digit[None], stats).contiguous(memory_format=torch.channels_last)
    with _LOCK, torch.inference_mode():
        hooks = [block.register_forward_hook(keep_output(name)) for name, block in blocks]
        residual_blocks = [(name, b) for name, b in blocks if isinstance(b, ResidualBlock)]
        for name, b in residual_blocks:
            b.observer = keep_paths(name)
        try:
            net.eval()(x)
        finally:
            for h in hooks:
                h.remove()
            for _, b in residual_blocks:
                b.observer = None
    return [BlockMaps(name, outputs[name], *paths.get(name, (None, None))) for name, _ in blocks]


def upscale(image: np.ndarray, k: int) -> np.ndarray:
    """A small uint8 image enlarged k times by whole pixels, so a browser shows crisp squares, not a blur."""
    return np.kron(image, np.ones((k, k), np.uint8))


def mosaic(maps: np.ndarray, columns: int | None = None, gap: int = 1) -> np.ndarray:
    """(C, H, W) channels tiled into one 2-D image, row by row, with NaN gaps (drawn blank)."""
    c, h, w = maps.shape
    # the smallest divisor of c from sqrt(c) up: full rows (16 -> 4x4, 32 -> 4x8, 64 -> 8x8)
    columns = columns or next(k for k in range(int(np.ceil(np.sqrt(c))), c + 1) if c % k == 0)
    rows = int(np.ceil(c / columns))
    out = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap), np.nan, np.float32)
    for i in range(c):
        r, k = divmod(i, columns)
        out[r * (h + gap):r * (h + gap) + h, k * (w + gap):k * (w + gap) + w] = maps[i]
    return out
