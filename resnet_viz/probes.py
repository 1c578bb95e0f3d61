"""What we record inside a model while it trains, read out as one tensor per step (one host copy).

- gradient norms of the weight layers (the rows of the layer x step heatmap);
- mean and std of every block's output (does the signal explode or die with depth?);
- for residual blocks: alpha, beta (mean over channels) and ||alpha F(x)|| / ||beta x||, how far the block
  is from the identity (NaN for plain blocks).
"""
import math

import torch

from .blocks import ResidualBlock
from .models import CifarResNet

# Block statistics come from the first few images of each batch: the same estimate at a fraction of the cost
# (all 64 images made the probes cost ~12% of a step, 8 images ~2%).
ACT_SAMPLE = 8


class Probes:
    def __init__(self, model: CifarResNet):
        self.layer_names = [name for name, _ in model.weight_layers()]
        blocks = [block for _, block in model.blocks()]
        self.block_names = [name for name, _ in model.blocks()]
        self._weights = [p for _, p in model.weight_layers()]
        self._residual = [b for b in blocks if isinstance(b, ResidualBlock)]
        self._slot = {id(b): i for i, b in enumerate(blocks)}
        self._stats: list[torch.Tensor] = []
        self._ratios = torch.full((len(blocks),), math.nan)
        self.active = True
        self._hooks = [block.register_forward_hook(self._record) for block in blocks]
        for b in self._residual:
            b.observer = self._observe(self._slot[id(b)])
        # alpha (row 0) and beta (row 1) per block, NaN for plain blocks; only learnable ones change
        self._scales = torch.full((2, len(blocks)), math.nan)
        self._learned = []
        for b in self._residual:
            for row, scale in enumerate((b.alpha, b.beta)):
                self._scales[row, self._slot[id(b)]] = scale.weight.detach().mean()
                if scale.weight.requires_grad:
                    self._learned.append((row, (self._slot[id(b)], scale.weight)))

    def _record(self, module, inputs, output):
        if self.active:
            std, mean = torch.std_mean(output.detach()[:ACT_SAMPLE])
            self._stats.append(torch.stack((mean, std)))

    def _observe(self, slot: int):
        def observe(residual, identity):
            if self.active:
                r, x = residual.detach()[:ACT_SAMPLE], identity.detach()[:ACT_SAMPLE]
                self._ratios[slot] = torch.linalg.vector_norm(r) / torch.linalg.vector_norm(x).clamp_min(1e-12)
        return observe

    def read(self) -> torch.Tensor:
        """[grad norm per layer, mean per block, std per block, ratio per block, alpha per block,
        beta per block] for the step just taken, then reset."""
        n = len(self.block_names)
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self._weights]
        grad_norms = torch.stack(torch._foreach_norm(grads))
        stats = torch.stack(self._stats).T.reshape(-1) if self._stats else torch.full((2 * n,), math.nan)
        for row, (slot, weight) in self._learned:  # fixed scales were read once, at the start
            self._scales[row, slot] = weight.detach().mean()
        out = torch.cat((grad_norms, stats, self._ratios.clone(), self._scales.reshape(-1)))
        self._stats.clear()
        self._ratios.fill_(math.nan)
        return out

    def remove(self):
        for h in self._hooks:
            h.remove()
        for b in self._residual:
            b.observer = None
