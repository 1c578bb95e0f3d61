"""`python -m resnet_viz bench`: how fast this machine trains the default lesson, as one JSON object.

Ratios are measured inside one run (these machines are noisy); quote them, not absolute times.
"""
import os
import time

import numpy as np
import torch

from .config import DEFAULT_PRESET, PRESETS, replace
from .engine import Job, threads_per_worker
from .models import forward_flops

WARMUP_STEPS = 3


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """fp32 matmul GFLOP/s at the thread count training uses: the practical peak of this CPU."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def run_bench(steps: int = 20) -> dict:
    preset = PRESETS[DEFAULT_PRESET]
    train = replace(preset.train, steps=WARMUP_STEPS + steps, eval_every=10**6, eval_size=100)
    peak = matmul_gflops()
    snap = Job(preset.models, train).run_blocking()
    models = []
    for v in snap.models:
        per_step = float(np.median(v.seconds[WARMUP_STEPS:]))
        # forward + backward is ~3x the forward FLOPs (the backward computes two gradients per layer)
        train_gflops = 3 * forward_flops(v.spec) * train.batch_size / per_step / 1e9
        models.append({"name": v.name, "ms_per_step": round(1000 * per_step, 1),
                       "steps_per_s": round(1 / per_step, 2), "train_gflops": round(train_gflops, 1),
                       "efficiency": round(train_gflops / peak, 3)})
    return {"cores": os.cpu_count(), "torch_threads": threads_per_worker(), "torch": torch.__version__,
            "batch_size": train.batch_size, "matmul_gflops": round(peak, 1), "models": models,
            "lockstep_ms_per_step": round(sum(m["ms_per_step"] for m in models), 1)}
