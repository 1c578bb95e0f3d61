"""How fast this machine is, measured once per test session, so that hang guards scale with it.

Machines of one kind differ about 2x in speed, and CI may run on a slower one, or with another process on a
core (DESIGN.md section 9). No test asserts speed: a time limit in a test only catches a hang, and
`hang_s(seconds)` stretches it by the slowdown measured here against this file's reference machine (never
below 1). RESNET_LAB_SLOWDOWN=F sets the factor by hand.
"""
import os
import statistics
import time

# Measured on the machine that wrote these tests (2 cores, idle): one res-20 training step at batch 64
# (the kind of work the tests train) and a pure-Python loop (what the Streamlit server and the browsers'
# JavaScript do more of).
REFERENCE_TRAIN_STEP_S = 0.035
REFERENCE_PYTHON_LOOP_S = 0.050
MAX_FACTOR = 20.0


def _train_step_seconds() -> float:
    import torch
    import torch.nn.functional as nnf

    from resnet_viz.config import ModelSpec
    from resnet_viz.models import build_model

    torch.manual_seed(0)
    net = build_model(ModelSpec(depth=20)).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    x = torch.randn(64, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (64,))
    times = []
    for i in range(8):
        t0 = time.perf_counter()
        opt.zero_grad()
        nnf.cross_entropy(net(x), y).backward()
        opt.step()
        if i >= 2:  # the first steps allocate
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _python_loop_seconds() -> float:
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i * i
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure() -> dict:
    """The figures and the factor: the larger of the two ratios to the reference, at least 1."""
    train, loop = _train_step_seconds(), _python_loop_seconds()
    measured = max(train / REFERENCE_TRAIN_STEP_S, loop / REFERENCE_PYTHON_LOOP_S)
    override = os.environ.get("RESNET_LAB_SLOWDOWN", "")
    factor = float(override) if override else min(MAX_FACTOR, max(1.0, measured))
    return {"train_step_ms": 1000 * train, "python_loop_ms": 1000 * loop, "measured": measured, "factor": factor,
            "override": bool(override)}


_FIGURES: dict | None = None


def figures() -> dict:
    global _FIGURES
    if _FIGURES is None:
        _FIGURES = measure()
    return _FIGURES


def slowdown() -> float:
    return figures()["factor"]


def hang_s(seconds: float) -> float:
    """A hang guard of `seconds` on the reference machine, stretched by this machine's slowdown."""
    return seconds * slowdown()


def hang_ms(seconds: float) -> float:
    """The same, in milliseconds, for Playwright."""
    return 1000 * hang_s(seconds)


def describe() -> str:
    f = figures()
    how = "set by RESNET_LAB_SLOWDOWN" if f["override"] else f"measured {f['measured']:.2f}x, floor 1"
    return (f"speed: res-20 train step {f['train_step_ms']:.1f} ms (reference {1000 * REFERENCE_TRAIN_STEP_S:.0f}), "
            f"Python loop {f['python_loop_ms']:.1f} ms (reference {1000 * REFERENCE_PYTHON_LOOP_S:.0f}); "
            f"hang guards x{f['factor']:.2f} ({how})")
