"""What a model costs: parameters, forward FLOPs, and the layer table (Keras's model.summary(), the papers'
layer tables): one row per unit of the forward path with its output size, parameters and FLOPs.

FLOPs are counted by torch's own `torch.utils.flop_counter.FlopCounterMode` (2 per multiply-add of every conv
and matmul; BN, ReLU, pooling and the additions of skip paths are a rounding error and left out, as in the
papers). The models are built on the meta device: shapes and counts without memory or arithmetic, so even
ResNet-152 at 224x224 takes a fraction of a second.
"""
from dataclasses import dataclass
from functools import cache

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..config import ModelSpec
from .registry import IMAGE_SHAPE, NUM_CLASSES, build_model


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@dataclass(frozen=True)
class Row:
    name: str  # s2.b3, stem, fc, C1, ...
    op: dict  # what the unit does (models.ops)
    shape: tuple[int, ...]  # output size, one image: (C, H, W) or (features,)
    params: int
    flops: int
    count: int = 1  # units merged into this row (grouped stages)


@dataclass(frozen=True)
class Table:
    spec: ModelSpec
    input_shape: tuple[int, int, int]
    classes: int
    rows: tuple[Row, ...]
    params: int
    flops: int  # one image's forward pass

    def grouped(self) -> tuple[Row, ...]:
        """The blocks of each stage merged into one row, as the papers print their tables ('x 3')."""
        out: list[Row] = []
        for row in self.rows:
            prev = out[-1] if out else None
            if prev is not None and "stage" in row.op and prev.op.get("stage") == row.op["stage"]:
                out[-1] = Row(f"s{row.op['stage']}", prev.op, row.shape, prev.params + row.params,
                              prev.flops + row.flops, prev.count + 1)
            else:
                out.append(Row(f"s{row.op['stage']}", row.op, row.shape, row.params, row.flops)
                           if "stage" in row.op else row)
        return tuple(out)


@cache
def layer_table(spec: ModelSpec, input_shape: tuple[int, int, int] = IMAGE_SHAPE,
                classes: int = NUM_CLASSES) -> Table:
    with torch.device("meta"):
        model = build_model(spec, in_channels=input_shape[0], num_classes=classes).eval()
    fqn = {id(m): name for name, m in model.named_modules()}
    root = type(model).__name__
    units = model.table_units()
    shapes: dict[int, tuple[int, ...]] = {}
    hooks = [modules[-1].register_forward_hook(_keep_shape(shapes, i)) for i, (_, modules, _) in enumerate(units)]
    counter = FlopCounterMode(display=False)
    try:
        with counter, torch.no_grad():
            model(torch.zeros(1, *input_shape, device="meta"))
    finally:
        for h in hooks:
            h.remove()
    counts = counter.get_flop_counts()
    rows = []
    for i, (name, modules, op) in enumerate(units):
        flops = sum(sum(counts.get(f"{root}.{fqn[id(m)]}", {}).values()) for m in modules)
        params = sum(p.numel() for m in modules for p in m.parameters())
        rows.append(Row(name, op, shapes[i], params, int(flops)))
    return Table(spec, tuple(input_shape), classes, tuple(rows), count_params(model),
                 int(counter.get_total_flops()))


def _keep_shape(shapes: dict, i: int):
    def keep(module, inputs, output):
        shapes[i] = tuple(output.shape[1:])
    return keep


def forward_flops(spec: ModelSpec, input_shape: tuple[int, int, int] = IMAGE_SHAPE,
                  classes: int = NUM_CLASSES) -> int:
    """FLOPs of one image's forward pass (2 x multiply-adds)."""
    return layer_table(spec, input_shape, classes).flops


def spec_params(spec: ModelSpec, input_shape: tuple[int, int, int] = IMAGE_SHAPE,
                classes: int = NUM_CLASSES) -> int:
    return layer_table(spec, input_shape, classes).params
