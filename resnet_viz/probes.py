"""What we record inside a model while it trains, read out as one tensor per step (one host copy).

- gradient norms of the depth-many weight layers (the rows of the layer x step heatmap);
- mean and std of every block's output (does the signal explode or die with depth?).
"""
import torch

from .models import CifarResNet

# Block statistics come from the first few images of each batch: the same estimate at a fraction of the cost
# (all 64 images made the probes cost ~12% of a step, 8 images ~2%).
ACT_SAMPLE = 8


class Probes:
    def __init__(self, model: CifarResNet):
        self.layer_names = [name for name, _ in model.weight_layers()]
        self.block_names = [name for name, _ in model.blocks()]
        self._weights = [p for _, p in model.weight_layers()]
        self._stats: list[torch.Tensor] = []
        self.active = True
        self._hooks = [block.register_forward_hook(self._record) for _, block in model.blocks()]

    def _record(self, module, inputs, output):
        if self.active:
            std, mean = torch.std_mean(output.detach()[:ACT_SAMPLE])
            self._stats.append(torch.stack((mean, std)))

    def read(self) -> torch.Tensor:
        """[grad norm per layer..., (mean, std) per block...] for the step just taken, then reset."""
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self._weights]
        grad_norms = torch.stack(torch._foreach_norm(grads))
        stats = torch.stack(self._stats).T.reshape(-1) if self._stats else torch.zeros(2 * len(self.block_names))
        self._stats.clear()
        return torch.cat((grad_norms, stats))

    def remove(self):
        for h in self._hooks:
            h.remove()
