"""A model's weights in one flat shared-memory buffer, so the web server sees what the worker trains.

The worker process trains the models; the server draws digits through them and shows their feature maps.
Both build the same model and bind every floating-point parameter and buffer (BN running statistics and
fixed alpha/beta included) to a view into one shared buffer per model: the optimiser's in-place updates land
there, and the server reads the latest weights with no copy and no message. One buffer per model, not one
shared segment per tensor: a 56-layer net has ~300 tensors, and each segment costs a file descriptor.

A read can see a half-applied optimiser step (a mix of steps t and t+1, which differ by one small update);
for predictions and pictures that is harmless, and it keeps the training loop free of locks.
"""
import torch
from torch import nn


def float_tensors(model: nn.Module):
    """(module, name, is_parameter, tensor) for every floating-point parameter and buffer, in a fixed order."""
    for module in model.modules():
        for name, p in module._parameters.items():
            if p is not None and p.is_floating_point():
                yield module, name, True, p
        for name, b in module._buffers.items():
            if b is not None and b.is_floating_point():
                yield module, name, False, b


def flat_size(model: nn.Module) -> int:
    return sum(t.numel() for *_, t in float_tensors(model))


def share_weights(model: nn.Module) -> torch.Tensor:
    """Move the model's float tensors into a new shared buffer (values kept) and return the buffer."""
    flat = torch.empty(flat_size(model)).share_memory_()
    bind_weights(model, flat, copy=True)
    return flat


def bind_weights(model: nn.Module, flat: torch.Tensor, copy: bool = False) -> nn.Module:
    """Make the model's float tensors views into `flat`, with their own strides (channels_last stays so).
    copy=True writes the model's current values into `flat` first; copy=False adopts what `flat` holds."""
    if flat.numel() != flat_size(model):
        raise ValueError(f"buffer has {flat.numel()} values, the model needs {flat_size(model)}")
    offset = 0
    with torch.no_grad():
        for module, name, is_param, t in float_tensors(model):
            view = flat.as_strided(t.shape, t.stride(), offset)
            if copy:
                view.copy_(t)
            if is_param:
                t.data = view  # the Parameter object stays (optimisers and probes hold it)
            else:
                module._buffers[name] = view
            offset += t.numel()
    return model
