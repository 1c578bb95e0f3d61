"""What every network of the lab offers the rest of it, whatever its family.

    forward(x) = forward_head(forward_features(x))
    blocks()         (name, module) in depth order: the units whose outputs are probed and shown as feature
                     maps, and that the lesion study deletes. Residual families: their blocks; plain classic
                     nets (LeNet-5, AlexNet, VGG): their conv stages.
    weight_layers()  (name, weight) of every weight layer on the main path, input to output: the rows of the
                     gradient-norm heatmap. Projection shortcuts are off the main path, so left out.
    table_units()    (name, module, op) covering the whole forward path once, in order: the rows of the layer
                     table (costs.layer_table); `op` is a short description (models.ops), words left to i18n.
"""
import torch
from torch import nn

from .blocks import CSPStage
from .ops import describe


class Net(nn.Module):
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    frozen = False  # a transfer model's frozen backbone (freeze_backbone): only the head trains

    def head_layer(self) -> nn.Linear:
        """The last linear layer: what transfer learning replaces with a new one."""
        return [m for m in self.head.modules() if isinstance(m, nn.Linear)][-1]

    def head_parameter_names(self) -> set[str]:
        """The head layer's parameter names, as named_parameters() and state_dict() give them."""
        head = set(map(id, self.head_layer().parameters()))
        return {name for name, p in self.named_parameters() if id(p) in head}

    def load_backbone(self, other: "Net") -> "Net":
        """Take every weight and BN statistic of a net of the same architecture, except its head (this net's
        own stays: the new head). Copies into this net's tensors in place (they may be shared buffers)."""
        head = other.head_parameter_names()
        self.load_state_dict({k: v for k, v in other.state_dict().items() if k not in head}, strict=False)
        return self

    def freeze_backbone(self) -> "Net":
        """Every parameter but the head's stops training, and batch norm keeps its running statistics
        (train() leaves the frozen BN layers in eval mode), as torchvision's fine-tuning recipe does."""
        head = self.head_parameter_names()
        for name, p in self.named_parameters():
            p.requires_grad_(name in head)
        self.frozen = True
        return self

    def train(self, mode: bool = True) -> "Net":
        super().train(mode)
        if mode and self.frozen:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def blocks(self) -> list[tuple[str, nn.Module]]:
        raise NotImplementedError

    def block_slots(self) -> list[tuple[nn.Module, int]]:
        """(container, index) of every block, in blocks() order: where the lesion study swaps one out."""
        raise NotImplementedError

    def weight_layers(self) -> list[tuple[str, nn.Parameter]]:
        raise NotImplementedError

    def table_units(self) -> list[tuple[str, nn.Module, dict]]:
        raise NotImplementedError


def he_init(model: Net) -> None:
    """Kaiming normal (fan_out) for convs, BN at scale 1 and shift 0, as torchvision's ResNet; then the head
    centred (centre_head)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    centre_head(model)


@torch.no_grad()
def centre_head(model: Net) -> None:
    """Give each row of the last linear layer (one class's weights) zero mean. Its input is pooled ReLU
    output, all positive, with a large part common to every digit: in a deep residual net, whose blocks add
    up, ~5x plain-20's. Uncentred rows turn that part into a large logit for the same class on every digit,
    so res-56 started at loss ~3.0, well above chance (ln 10 = 2.30): the lesson's better net started worse.
    Centred, every net starts near chance and the head keeps its scale (a head scaled towards zero also
    starts at chance, but slows every net's first steps)."""
    weight = model.head_layer().weight
    weight.sub_(weight.mean(dim=1, keepdim=True))


class StagedNet(Net):
    """A residual-family net: `stem`, `stages` (each a Sequential of blocks or a CSPStage), `head`."""

    def blocks(self) -> list[tuple[str, nn.Module]]:
        """Names like 's2.b3' (stage 2, block 3), counted from 1."""
        return [(f"s{si}.b{bi}", b) for si, stage in enumerate(self.stages, 1) for bi, b in enumerate(stage, 1)]

    def block_slots(self) -> list[tuple[nn.Module, int]]:
        seqs = [stage.blocks if isinstance(stage, CSPStage) else stage for stage in self.stages]
        return [(seq, i) for seq in seqs for i in range(len(seq))]

    def stem_convs(self) -> list[tuple[str, nn.Conv2d]]:
        return [("stem", self.stem[0])]

    def weight_layers(self) -> list[tuple[str, nn.Parameter]]:
        """Stem, every conv of every block, the head; for CSP stages their downsampling and transition convs
        too. Without CSP a CIFAR net has exactly `depth` rows."""
        layers = [(name, conv.weight) for name, conv in self.stem_convs()]
        for si, stage in enumerate(self.stages, 1):
            if isinstance(stage, CSPStage) and isinstance(stage.down, nn.Sequential):
                layers.append((f"s{si}.down", stage.down[0].weight))
            for bi, block in enumerate(stage, 1):
                layers += [(f"s{si}.b{bi}.conv{i}", conv.weight) for i, conv in enumerate(block.F.convs, 1)]
            if isinstance(stage, CSPStage):
                layers.append((f"s{si}.transition", stage.transition[0].weight))
        layers.append(("head", self.head[-1].weight))
        return layers


class ClassicNet(Net):
    """A plain CNN of the course notes (LeNet-5, AlexNet, VGG): `stages`, an nn.Sequential of named conv
    stages (each its convs with their BN and activation, and its pool), then `head` (pooling, flatten, the
    fully connected layers). `head_names` names the head's linear layers."""

    head_names: tuple[str, ...] = ()

    def forward_features(self, x):
        return self.stages(x)

    def blocks(self) -> list[tuple[str, nn.Module]]:
        return list(self.stages.named_children())

    def block_slots(self) -> list[tuple[nn.Module, int]]:
        return [(self.stages, i) for i in range(len(self.stages))]

    def _weighted(self):
        """(name, layer) of every conv and linear layer, input to output."""
        for stage_name, stage in self.stages.named_children():
            convs = [m for m in stage.modules() if isinstance(m, nn.Conv2d)]
            for j, conv in enumerate(convs, 1):
                yield (stage_name if len(convs) == 1 else f"{stage_name}.conv{j}"), conv
        linears = [m for m in self.head if isinstance(m, nn.Linear)]
        yield from zip(self.head_names, linears, strict=True)

    def weight_layers(self) -> list[tuple[str, nn.Parameter]]:
        return [(name, layer.weight) for name, layer in self._weighted()]

    def table_units(self) -> list[tuple[str, list, dict]]:
        """One row per conv or linear layer (with the BN and activation after it) and one per pool."""
        names = {id(layer): name for name, layer in self._weighted()}
        leaves = [m for stage in self.stages for m in _leaves(stage)] + list(self.head)
        rows, pending, pools = [], [], 0
        for m in leaves:
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                rows.append([names[id(m)], pending + [m], describe(m)])
                pending = []
            elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
                pools += 1
                rows.append([self.pool_name(pools, m), pending + [m], describe(m)])
                pending = []
            elif isinstance(m, nn.BatchNorm2d) and rows:
                rows[-1][1].append(m)
                rows[-1][2] = rows[-1][2] | {"bn": True}
            elif isinstance(m, (nn.ReLU, nn.Tanh)) and rows:
                rows[-1][1].append(m)
                rows[-1][2] = rows[-1][2] | {"act": "tanh" if isinstance(m, nn.Tanh) else "relu"}
            else:  # flatten, identity: belongs to the next row
                pending.append(m)
        return [tuple(r) for r in rows]

    def pool_name(self, index: int, module: nn.Module) -> str:
        return f"pool{index}"


def _leaves(module: nn.Module) -> list[nn.Module]:
    children = list(module.children())
    return [module] if not children else [leaf for c in children for leaf in _leaves(c)]
