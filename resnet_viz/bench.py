"""`python -m resnet_viz bench`: how fast this machine trains the default lesson, as one JSON object.

Ratios are measured inside one run (these machines are noisy); quote them, not absolute times.
"""
import os
import resource
import time

import numpy as np
import torch

from .config import DEFAULT_PRESET, PRESETS, replace
from .models import build_model, forward_flops
from .training.engine import Job, threads_per_worker
from .training.probes import Probes
from .training.trainer import Control

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


def probe_overhead(spec, batch_size: int, pairs: int = 40) -> float:
    """Time per training step with all probes on / without probes, minus 1: the median over `pairs` of
    back-to-back steps, one without and one with, so machine noise hits both sides of each pair alike."""
    import torch.nn.functional as nnf

    from .data.arrays import tensors

    data = tensors()
    x = data.normalise(data.train_x[:batch_size]).contiguous(memory_format=torch.channels_last)
    y = data.train_y[:batch_size]
    torch.manual_seed(0)
    net = build_model(spec).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)

    def step(probes) -> float:
        t0 = time.perf_counter()
        loss = nnf.cross_entropy(net(x), y)
        loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if probes is not None:
            probes.read().numpy()
        return time.perf_counter() - t0

    ratios = []
    for i in range(pairs + WARMUP_STEPS):
        plain = step(None)
        probes = Probes(net)
        probed = step(probes)
        probes.remove()
        if i >= WARMUP_STEPS:
            ratios.append(probed / plain)
    return float(np.median(ratios)) - 1


def predict_ms(nets, repeats: int = 30) -> float:
    """Median milliseconds from a 280x280 RGBA canvas (a test digit, drawn large) to every model's class
    probabilities, preprocessing included: what the Draw page does for each stroke."""
    from PIL import Image

    from .analysis.inference import probabilities
    from .data.arrays import bundled_mnist
    from .data.preprocess import prepare

    big = np.asarray(Image.fromarray(bundled_mnist().test_images[0]).resize((280, 280), Image.Resampling.BILINEAR))
    canvas = np.dstack([big, big, big, np.full_like(big, 255)])
    times = []
    for i in range(repeats + WARMUP_STEPS):
        t0 = time.perf_counter()
        probabilities(nets, prepare(canvas).digit)
        if i >= WARMUP_STEPS:
            times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def lesson_shown(losses: dict) -> bool:
    """The default lesson is on screen (its preset's Lesson: plain-56's training loss, averaged over the last
    LESSON_WINDOW steps, at least 2x both plain-20's and res-56's). `losses`: model name -> losses."""
    preset = PRESETS[DEFAULT_PRESET]
    return preset.lesson.shown(losses, preset.train)


def lesson_step(losses: dict) -> int:
    """The first step at which `lesson_shown` holds (1-based), or -1 if it never does."""
    preset = PRESETS[DEFAULT_PRESET]
    return preset.lesson.step(losses, preset.train)


def lesson_seconds(name: str = DEFAULT_PRESET) -> tuple[float, int]:
    """Seconds from starting a preset's run (models built, data loaded; its pretraining included) until its
    Lesson shows, and the step it showed at (NaN, -1 if it did not within the preset's steps)."""
    preset = PRESETS[name]
    losses: dict[str, list[float]] = {m.name: [] for m in preset.models}
    result = [float("nan"), -1]
    t0 = time.perf_counter()
    job = Job(preset.models, preset.train)

    def watch(step, step_losses):
        for model, loss in zip(losses, step_losses, strict=True):
            losses[model].append(loss)
        if preset.lesson.shown(losses, preset.train):
            result[:] = [time.perf_counter() - t0, step]
            job._control[Control.STOP] = 1

    job.run_blocking(watch)
    return result[0], result[1]


def preset_lessons(timed: dict[str, tuple[float, int]]) -> dict:
    """Every preset's time to its lesson (lesson_seconds of each), as {preset: {on, seconds, step, steps}}."""
    out = {}
    for name, (seconds, step) in timed.items():
        preset = PRESETS[name]
        out[name] = {"on": preset.lesson.on, "seconds": None if step < 0 else round(seconds, 1),
                     "step": None if step < 0 else step, "steps": preset.train.steps}
    return out


def first_render_seconds(chromium: str = "/usr/bin/chromium") -> dict:
    """Start `streamlit run streamlit_app.py` and time, in a headless Chromium, how long after the server
    answers /_stcore/health the Lab page shows its Train button (a first visit: nothing cached)."""
    import socket
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(__file__).resolve().parent.parent
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=args)
        page = browser.new_page()
        server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(root / "streamlit_app.py"),
                                   "--server.headless", "true", "--server.port", str(port), "--server.address",
                                   "127.0.0.1", "--browser.gatherUsageStats", "false"],
                                  cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            t0 = time.perf_counter()
            while True:
                try:
                    if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).read() == b"ok":
                        break
                except OSError:
                    time.sleep(0.05)
                if time.perf_counter() - t0 > 60:
                    raise RuntimeError("the app did not start in 60 s")
            ready = time.perf_counter()
            page.goto(f"http://127.0.0.1:{port}")
            page.get_by_role("button", name="Train").wait_for(timeout=60_000)
            return {"server_start_s": round(ready - t0, 2), "first_render_s": round(time.perf_counter() - ready, 2)}
        finally:
            server.terminate()
            server.wait(15)
            browser.close()


def run_bench(steps: int = 20, first_render: bool = False, lesson: bool = True, presets: bool = False) -> dict:
    torch.set_num_threads(threads_per_worker())
    preset = PRESETS[DEFAULT_PRESET]
    train = replace(preset.train, steps=WARMUP_STEPS + steps, eval_every=10**6, eval_size=100)
    peak = matmul_gflops()
    job = Job(preset.models, train)
    snap = job.run_blocking()
    draw_ms = predict_ms(job.nets)
    models = []
    for v in snap.models:
        per_step = float(np.median(v.seconds[WARMUP_STEPS:]))
        # forward + backward is ~3x the forward FLOPs (the backward computes two gradients per layer)
        train_gflops = 3 * forward_flops(v.spec) * train.batch_size / per_step / 1e9
        models.append({"name": v.name, "ms_per_step": round(1000 * per_step, 1),
                       "steps_per_s": round(1 / per_step, 2), "train_gflops": round(train_gflops, 1),
                       "efficiency": round(train_gflops / peak, 3)})
    deepest = max(preset.models, key=lambda m: (m.depth, m.skip))
    # The lesson trains the default preset until plain-56 falls behind (30-60 s): `bench --no-lesson` skips it.
    timed = {name: lesson_seconds(name) for name in PRESETS} if presets else {}
    shown = {}
    if lesson:
        seconds, step = timed.get(DEFAULT_PRESET) or lesson_seconds()  # trained once when both are asked for
        shown = {"degradation_seconds": round(seconds, 1), "degradation_step": step}
    render = first_render_seconds() if first_render else {}
    lessons = {"lessons": preset_lessons(timed)} if presets else {}
    return {"cores": os.cpu_count(), "torch_threads": threads_per_worker(), "torch": torch.__version__,
            "batch_size": train.batch_size, "matmul_gflops": round(peak, 1), "models": models,
            "lockstep_ms_per_step": round(sum(m["ms_per_step"] for m in models), 1),
            # pairs of steps follow --steps (40 at the default 20): a quick `bench --steps 2` stays quick
            "probe_overhead": round(probe_overhead(deepest, train.batch_size, pairs=max(5, min(40, 2 * steps))), 3),
            "probe_overhead_model": deepest.name,
            "predict_ms": round(draw_ms, 1),
            # peak resident memory of this process after training the default preset (Linux reports KiB)
            "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), **shown, **render, **lessons}
