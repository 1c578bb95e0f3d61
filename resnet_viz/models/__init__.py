"""The networks: blocks, one module per family, the registry from family names to builders, and costs."""
from .blocks import CSPStage, PlainBlock, ResidualBlock
from .costs import Row, Table, count_params, forward_flops, layer_table, spec_params
from .net import ClassicNet, Net, StagedNet
from .registry import BUILDERS, IMAGE_SHAPE, NUM_CLASSES, build_model

__all__ = ["build_model", "count_params", "forward_flops", "spec_params", "layer_table", "Row", "Table",
           "Net", "StagedNet", "ClassicNet", "BUILDERS", "IMAGE_SHAPE", "NUM_CLASSES", "CSPStage", "PlainBlock",
           "ResidualBlock"]
