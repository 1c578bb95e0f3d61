"""What we record inside a model while it trains, read out as one tensor per step (one host copy).

- gradient norms of the weight layers (the rows of the layer x step heatmap), NaN for a frozen layer (a
  transfer model's backbone): it has no gradient, which is not the same as a vanished one;
- mean and std of every block's output (does the signal explode or die with depth?);
- for residual blocks: alpha, beta (mean over channels) and ||alpha F(x)|| / ||beta x||, how far the block
  is from the identity (NaN for plain blocks).
"""
import math

import torch

from ..models import Net, ResidualBlock

# Block statistics come from the first few images of each batch: the same estimate at a fraction of the cost
# (all 64 images made the probes cost ~12% of a step, 8 images ~2%).
ACT_SAMPLE = 8


class Probes:
    def __init__(self, model: Net):
        self.layer_names = [name for name, _ in model.weight_layers()]
        blocks = [block for _, block in model.blocks()]
        self.block_names = [name for name, _ in model.blocks()]
        self._weights = [p for _, p in model.weight_layers()]
        self._residual = [b for b in blocks if isinstance(b, ResidualBlock)]
        n = len(blocks)
        device = next(model.parameters()).device  # slots live beside the activations (out= needs that)
        self._frozen = torch.tensor([not p.requires_grad for p in self._weights], device=device)
        # Each hook reduces its sample at once, writing straight into its own slot (out=): no lists, no
        # stacking, nothing kept alive, one vectorised pass in read(). (std_mean cost ~170 us a call here,
        # ~5% of a res-56 step; a sum and a norm ~12 us. Keeping views for one batched reduction later was
        # slower: held activations cannot be reused by the allocator.)
        self._sums = torch.full((2, n), math.nan, device=device)  # per block: sum(x), ||x||
        self._counts = torch.zeros(n, device=device)  # elements per sample, fixed per block: set on the first call
        self._norms = torch.full((2, n), math.nan, device=device)  # per residual block: ||alpha F(x)||, ||beta x||
        self.active = True
        self._hooks = [block.register_forward_hook(self._record(i)) for i, block in enumerate(blocks)]
        slot = {id(b): i for i, b in enumerate(blocks)}
        for b in self._residual:
            b.observer = self._observe(slot[id(b)])
        # alpha (row 0) and beta (row 1) per block, NaN for plain blocks; only learnable ones change
        self._scales = torch.full((2, n), math.nan, device=device)
        self._learned = []
        for b in self._residual:
            for row, scale in enumerate((b.alpha, b.beta)):
                self._scales[row, slot[id(b)]] = scale.weight.detach().mean()
                if scale.weight.requires_grad:
                    self._learned.append((row, (slot[id(b)], scale.weight)))

    def _record(self, slot: int):
        def record(module, inputs, output):
            if self.active:
                sample = output.detach()[:ACT_SAMPLE]
                torch.sum(sample, dim=(0, 1, 2, 3), out=self._sums[0, slot])
                torch.linalg.vector_norm(sample, out=self._sums[1, slot])
                if not self._counts[slot]:
                    self._counts[slot] = sample.numel()
        return record

    def _observe(self, slot: int):
        def observe(residual, identity):
            if self.active:
                torch.linalg.vector_norm(residual.detach()[:ACT_SAMPLE], out=self._norms[0, slot])
                torch.linalg.vector_norm(identity.detach()[:ACT_SAMPLE], out=self._norms[1, slot])
        return observe

    def read(self) -> torch.Tensor:
        """The step just taken's metrics.PROBED series, concatenated in that order (grad norm per layer, then
        per block: mean, std, ratio, alpha, beta), then reset."""
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self._weights]
        grad_norms = torch.stack(torch._foreach_norm(grads)).masked_fill_(self._frozen, math.nan)
        (total, norm), count = self._sums, self._counts
        mean = total / count
        std = (norm * norm / count - mean * mean).clamp_min(0).sqrt()  # E[x^2] - E[x]^2
        ratio = self._norms[0] / self._norms[1].clamp_min(1e-12)
        for row, (slot, weight) in self._learned:  # fixed scales were read once, at the start
            self._scales[row, slot] = weight.detach().mean()
        out = torch.cat((grad_norms, mean, std, ratio, self._scales.reshape(-1))).cpu()  # one host copy
        self._sums.fill_(math.nan)
        self._norms.fill_(math.nan)
        return out

    def remove(self):
        for h in self._hooks:
            h.remove()
        for b in self._residual:
            b.observer = None
