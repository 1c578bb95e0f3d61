"""Where the models train: a CUDA GPU or Apple's MPS when present, else the CPU.

On a GPU the worker trains its own copies of the models and publishes their weights into the CPU models
(whose weights are the shared buffers the web server reads, see weights.py) every few steps and at the end:
the Draw and Errors pages then see weights at most PUBLISH_EVERY steps old.
"""
import copy

import torch
from torch import nn

from ..i18n import LabError

PUBLISH_EVERY = 10  # steps; one copy of every weight tensor, ~1 ms a model on a GPU


def _mps() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def available() -> list[str]:
    """The devices this machine can train on, best first."""
    return (["cuda"] if torch.cuda.is_available() else []) + (["mps"] if _mps() else []) + ["cpu"]


def resolve(name: str) -> torch.device:
    """"auto" -> the best available; an explicit device that is missing is a LabError, not a crash."""
    if name == "auto":
        return torch.device(available()[0])
    if name not in available():
        raise LabError("error.device_unavailable", device=name)
    return torch.device(name)


def on_device(nets: list[nn.Module], device: torch.device) -> list[nn.Module]:
    """The models themselves on the CPU; independent copies elsewhere (publish() brings their weights back)."""
    if device.type == "cpu":
        return nets
    return [copy.deepcopy(net).to(device) for net in nets]


@torch.no_grad()
def publish(sources: list[nn.Module], targets: list[nn.Module]) -> None:
    """Copy the trained copies' weights and buffers into the CPU models, in place (load_state_dict copies into
    the existing tensors, so the shared buffers stay shared); a no-op when they are the same models."""
    for src, dst in zip(sources, targets):
        if src is not dst:
            dst.load_state_dict(src.state_dict())
