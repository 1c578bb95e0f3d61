"""What a run needs in memory, estimated before it starts, and the most one run may take on this server.

One student's run must not take the server down: one depth-110, width-2, stem-stride-1 net at batch 1024
peaked at 16 GB of resident memory (`/usr/bin/time -v`), enough for the kernel's OOM killer to take the
worker or the server on a laptop. So every run is estimated first and refused over the budget, with a
message that names what to lower.

The estimate is counted, not guessed: each model runs one forward pass on the meta device (shapes, no memory,
no arithmetic) at the run's batch size, and every tensor autograd saves for the backward pass is summed
(`torch.autograd.graph.saved_tensors_hooks`); then the weights, their gradients and the optimiser's state
(momentum: one more copy, Adam: two). The models of a comparison train in turn in each of the run's workers
(engine.split), so their weights add up and each worker's largest backward pass counts. A worker process
starts at about WORKER_BASE_MB.
"""
import os
from dataclasses import dataclass
from functools import cache

import torch

from ..config import ModelSpec, TrainSpec
from ..i18n import LabError
from ..models.registry import IMAGE_SHAPE, build_model
from .device import resolve

WORKER_BASE_MB = 400  # a worker with torch and the dataset loaded, before any model
# Saved activations are not all of it: the conv kernels' scratch, the gradients flowing back, the allocator's
# slack. The measured 16 GB run (peak resident) was 1.27x its 12.6 GB of saved tensors.
ACTIVATION_OVERHEAD = 1.25
MIB = 2**20


@dataclass(frozen=True)
class Need:
    total_mb: float
    weights_mb: float  # weights, gradients and optimiser state of every model
    activations_mb: float  # each worker's largest backward pass at this batch size, summed
    largest: str  # the model with the largest backward pass


def machine_memory_mb() -> float:
    """This machine's memory, or the container's limit when it is lower (cgroup v2 or v1)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            limit = open(path).read().strip()
        except OSError:
            continue
        if limit.isdigit() and 0 < int(limit) < total:
            total = int(limit)
    return total / MIB


def run_budget_mb(trainers: int | None = None) -> float:
    """The most one run may need: RESNET_LAB_RUN_MEMORY_MB, else half the machine's memory shared among the
    runs that train at once (the other half is the server's, the browsers' on a laptop, and the system's)."""
    env = os.environ.get("RESNET_LAB_RUN_MEMORY_MB", "")
    if env.isdigit() and int(env) > 0:
        return float(env)
    if trainers is None:
        from .engine import max_workers
        trainers = max_workers()
    total = machine_memory_mb()
    return total / 2 / max(1, trainers) if total else float("inf")


@cache
def _params(spec: ModelSpec) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in build_model(spec).parameters())


@cache
def _saved_bytes(spec: ModelSpec, batch: int) -> int:
    with torch.device("meta"):
        net = build_model(spec).train()
    seen: dict[int, int] = {}
    kept = []  # the saved tensors themselves, so that no id is reused while counting

    def pack(t):
        if id(t) not in seen:
            seen[id(t)] = t.numel() * t.element_size()
            kept.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = net(torch.zeros(batch, *IMAGE_SHAPE, device="meta", requires_grad=False))
    del out
    return sum(seen.values())


def _state_copies(train: TrainSpec) -> int:
    """Copies of every weight besides the weight itself: its gradient, and the optimiser's state."""
    if train.optimizer == "adam":
        return 3
    return 2 if train.momentum > 0 else 1


def estimate(models, train: TrainSpec, parts: list[list[int]] | None = None) -> Need:
    """`parts`: the model indices each worker trains (default: one worker for all)."""
    models = list(models)
    params = [_params(spec) for spec in models]
    acts = [_saved_bytes(spec, train.batch_size) * ACTIVATION_OVERHEAD for spec in models]
    parts = parts or [list(range(len(models)))]
    weights = sum(params) * 4 * (1 + _state_copies(train)) / MIB
    activations = sum(max(acts[i] for i in part) for part in parts) / MIB
    largest = models[max(range(len(models)), key=acts.__getitem__)].name
    return Need(len(parts) * WORKER_BASE_MB + weights + activations, weights, activations, largest)


def check_memory(models, train: TrainSpec, budget_mb: float | None = None, parts=None) -> Need:
    """Refuse a run over the server's per-run budget (only where it trains in this machine's memory)."""
    need = estimate(models, train, parts)
    budget = run_budget_mb() if budget_mb is None else budget_mb
    if resolve(train.device).type == "cpu" and need.total_mb > budget:
        raise LabError("error.run_memory", need=_size(need.total_mb), budget=_size(budget), model=need.largest,
                       batch=train.batch_size)
    return need


def _size(mb: float) -> str:
    return f"{mb / 1024:.1f} GB" if mb >= 1024 else f"{mb:.0f} MB"
