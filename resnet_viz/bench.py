"""`python -m resnet_viz bench`: how fast this machine trains the default lesson, as one JSON object.

Ratios are measured inside one run (these machines are noisy); quote them, not absolute times.
"""
import contextlib
import os
import re
import resource
import time

import numpy as np
import torch

from .config import DEFAULT_PRESET, PRESETS, replace
from .models import build_model, forward_flops
from .training.engine import Job, WorkerQueue, threads_per_worker
from .training.probes import Probes

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
            job.stop()

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


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@contextlib.contextmanager
def app_server(env: dict[str, str] | None = None):
    """`streamlit run streamlit_app.py` on a free port of 127.0.0.1, from the project folder (so its
    .streamlit/config.toml applies), with `env` added to its environment: yields (process, url, seconds until
    /_stcore/health answered)."""
    import socket
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(__file__).resolve().parent.parent
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(root / "streamlit_app.py"),
                               "--server.headless", "true", "--server.port", str(port), "--server.address",
                               "127.0.0.1", "--browser.gatherUsageStats", "false"],
                              cwd=root, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
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
        yield server, f"http://127.0.0.1:{port}", time.perf_counter() - t0
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:  # once 15 s were not enough to shut it down: the figures are taken
            server.kill()
            server.wait(15)


def first_render_seconds(chromium: str = "/usr/bin/chromium") -> dict:
    """Start the app and time, in a headless Chromium, how long after the server answers /_stcore/health
    the Lab page shows its Train button (a first visit: nothing cached)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            with app_server() as (_, url, started):
                page = browser.new_page()
                ready = time.perf_counter()
                page.goto(url)
                page.get_by_role("button", name="Train").wait_for(timeout=60_000)
                return {"server_start_s": round(started, 2), "first_render_s": round(time.perf_counter() - ready, 2)}
        finally:
            browser.close()


def _cpu_table() -> dict[int, tuple[int, float, float]]:
    """pid -> (parent pid, CPU seconds of the process, CPU seconds of its reaped children), from /proc."""
    table = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            table[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick,
                                 (int(fields[13]) + int(fields[14])) / tick)
    return table


def _tree_cpu(table, root: int, skip: int | None = None) -> float:
    """CPU seconds used by `root` and every process below it, reaped ones included (the `skip` subtree left
    out)."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, *_) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid == skip or pid not in table:
            continue
        total += table[pid][1] + table[pid][2]
        todo.extend(children.get(pid, []))
    return total


def cpu_split(server_pid: int) -> dict[str, float]:
    """CPU seconds so far of the app's server process, its training workers (everything below the server),
    and the browser (everything else below this process: Chromium and Playwright's driver)."""
    table = _cpu_table()
    server = table[server_pid][1] if server_pid in table else 0.0
    below = _tree_cpu(table, server_pid) - server
    me = os.getpid()
    browser = _tree_cpu(table, me, skip=server_pid) - table[me][1] - table[me][2] - _own_workers(table, me)
    return {"server": server, "worker": below, "browser": browser}


def _own_workers(table, me: int) -> float:
    """CPU of this process's own fork server and workers (the headless run's): not the browser's."""
    cpu = 0.0
    for pid, (ppid, *_) in table.items():
        if ppid == me:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b"forkserver" in f.read():
                        cpu += _tree_cpu(table, pid)
            except OSError:
                continue
    return cpu


def settle(pid: int, quiet_s: int = 4, limit_s: float = 40) -> None:
    """Wait until `pid` and everything below it have used almost no CPU for `quiet_s` seconds in a row (at most
    `limit_s`): the app's warm-up (the fork server, the default lesson's costs) starts 3 s after the first
    page and takes a few seconds; a teacher reading the page does not wait for it."""
    deadline = time.monotonic() + limit_s
    before, quiet = _tree_cpu(_cpu_table(), pid), 0
    while quiet < quiet_s and time.monotonic() < deadline:
        time.sleep(1)
        now = _tree_cpu(_cpu_table(), pid)
        quiet = quiet + 1 if now - before < 0.05 else 0
        before = now


PROGRESS = re.compile(r"step (\d+)/(\d+) · (\d+) s")
# The last step the page's training-loss chart has drawn. Plotly 6 sends numbers as base64 typed arrays, so
# the drawn points are read from the graph's _fullData, not from its data.
DRAWN_STEP_JS = """() => { const g = document.querySelector('.js-plotly-plot'); const d = g && g._fullData;
  let last = 0; if (d) for (const t of d) { const x = t.x; if (x && x.length) last = Math.max(last, x[x.length - 1]); }
  return last; }"""


class ChartLag:
    """How far the loss chart trails the status line, sampled while a run trains: in steps (status step minus
    the last step drawn) and in seconds (since the status line first showed the step after the last drawn)."""

    def __init__(self):
        self.seen: dict[int, float] = {}  # step -> when the status line first showed it
        self.steps: list[int] = []
        self.seconds: list[float] = []

    def sample(self, at: float, status_step: int, drawn_step: int) -> None:
        self.seen.setdefault(status_step, at)
        if status_step == 0 or drawn_step == 0:  # before the first step, nothing to draw yet
            return
        behind = max(0, status_step - int(drawn_step))
        stale_since = min((t for s, t in self.seen.items() if s > drawn_step), default=at)
        self.steps.append(behind)
        self.seconds.append(at - stale_since if behind else 0.0)

    def figures(self) -> dict:
        if not self.steps:
            return {}
        return {"median_steps": float(np.median(self.steps)), "worst_steps": max(self.steps),
                "median_s": round(float(np.median(self.seconds)), 1), "worst_s": round(max(self.seconds), 1),
                "samples": len(self.steps)}


def browser_run(lesson_at: int, env: dict[str, str], query: str = "", chromium: str = "/usr/bin/chromium",
                poll_s: float = 0.5, limit_s: float = 3600, settled: bool = True) -> dict:
    """The default preset trained from its Lab page in Chromium, the page left alone (its status read every
    `poll_s`): seconds from the Train click to Done, the page's own training time, when the page first
    showed step `lesson_at` (the lesson's step, from the headless run; 0: not timed), and the CPU seconds the
    worker, the server and the browser used meanwhile. `env` is added to the server's environment; `query`
    is a share link's settings (e.g. "steps=6"); `settled=False` presses Train at once, not after the server's
    warm-up (a test that reads no times). Raises TimeoutError when the page shows no Done in `limit_s`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            with app_server(env) as (server, url, _):
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"{url}/?{query}" if query else url)
                train = page.get_by_role("button", name="Train", exact=True)
                train.wait_for(timeout=60_000)
                if settled:
                    settle(server.pid)  # the server's warm-up, which follows the first page, is not the run's
                cpu0 = cpu_split(server.pid)
                t0 = time.perf_counter()
                train.click()
                lesson_s, page_s = float("nan"), float("nan")
                lag = ChartLag()
                while True:
                    text = page.evaluate("document.querySelector('[data-testid=stProgress]')?.innerText || ''")
                    m = PROGRESS.search(text)
                    if m and not text.startswith("Done"):
                        lag.sample(time.perf_counter() - t0, int(m.group(1)), page.evaluate(DRAWN_STEP_JS))
                    if m and int(m.group(1)) >= lesson_at > 0 and lesson_s != lesson_s:
                        lesson_s = time.perf_counter() - t0
                    if m and m.group(1) == m.group(2) and text.startswith("Done"):
                        page_s = float(m.group(3))
                        break
                    if time.perf_counter() - t0 > limit_s:
                        raise TimeoutError(f"the page showed no Done in {limit_s:.0f} s: {text!r}")
                    time.sleep(poll_s)
                wall = time.perf_counter() - t0
                cpu1 = cpu_split(server.pid)
        finally:
            browser.close()
    return {"wall_s": wall, "page_s": page_s, "lesson_s": lesson_s,
            "cpu_s": {k: round(cpu1[k] - cpu0[k], 1) for k in cpu0}, "chart_lag": lag.figures()}


def headless_run(workers: bool = False) -> tuple[float, int]:
    """The default preset's whole run without a browser: seconds from Job() to done, and its lesson step. In
    this process (the CLI's way), or with `workers` in the app's worker processes as a page would start it
    (engine.Job: one single-thread worker per core). The first Job of a process builds the costs it checks
    (models on the meta device, ~2 s): done before the clock starts, as the app's warm-up does."""
    preset = PRESETS[DEFAULT_PRESET]
    losses: dict[str, list[float]] = {m.name: [] for m in preset.models}

    def watch(step, step_losses):
        for model, loss in zip(losses, step_losses, strict=True):
            losses[model].append(loss)

    Job(preset.models, replace(preset.train, steps=1), queue=WorkerQueue(1)).start().join()  # the fork server too
    t0 = time.perf_counter()
    if not workers:
        Job(preset.models, preset.train).run_blocking(watch)
        return time.perf_counter() - t0, lesson_step(losses)
    job = Job(preset.models, preset.train, queue=WorkerQueue(1), viewer_here=True).start()
    job.join()
    seconds = time.perf_counter() - t0
    snap = job.snapshot()
    if snap.state != "done":
        raise RuntimeError(f"the headless run in workers ended {snap.state}: {snap.error}")
    return seconds, lesson_step({v.name: list(v.train_loss) for v in snap.models})


def browser_bench() -> dict:
    """The same default run headless (in this process, then in the app's workers), then with its Lab page open
    in Chromium, back to back: as the app runs it (the page being on this machine: one single-thread worker
    per core, the models split among them, see engine.Job), then in one single-thread worker
    (RESNET_LAB_THREADS=1: how the app ran it before the split) when the machine has more than one core, the
    split lever measured in the same run. `*_overhead` is over the headless run in this process (the issue's
    measure), `*_over_workers` over the same workers with no page: what the page itself costs."""
    headless_s, step = headless_run()
    workers_s, _ = headless_run(workers=True)
    out = {"headless_s": round(headless_s, 1), "headless_workers_s": round(workers_s, 1),
           "browser_degradation_step": step}
    runs = [("browser", {})] + ([("browser_one_worker", {"RESNET_LAB_THREADS": "1"})]
                                if threads_per_worker() > 1 else [])
    for key, env in runs:
        shown = browser_run(step, env)
        out |= {f"{key}_s": round(shown["wall_s"], 1), f"{key}_overhead": round(shown["wall_s"] / headless_s, 2),
                f"{key}_over_workers": round(shown["wall_s"] / workers_s, 2),
                f"{key}_page_s": shown["page_s"], f"{key}_degradation_seconds": round(shown["lesson_s"], 1),
                f"{key}_cpu_s": shown["cpu_s"], f"{key}_chart_lag": shown["chart_lag"]}
    return out


def split_bench(steps: int | None = None) -> dict:
    """The default run in the app's worker processes, three ways back to back: one worker with the job's
    threads (how a run started from another machine trained before the split), one worker with one thread
    (from a browser on this machine, before), and as a job runs it now: one single-thread worker per core,
    each training its share of the models. Seconds from start to done. README "What limits it": these small
    convs gain little from a second OpenMP thread, and two single-thread processes do not wait on each other."""
    preset = PRESETS[DEFAULT_PRESET]
    train = preset.train if steps is None else replace(preset.train, steps=steps)
    full = threads_per_worker()

    def timed(job: Job) -> float:  # each job in its own queue: nothing else here waits for it
        t0 = time.perf_counter()
        job.start().join()
        snap = job.snapshot()
        if snap.state != "done":
            raise RuntimeError(f"a split_bench run ended {snap.state}: {snap.error}")
        return round(time.perf_counter() - t0, 1)

    # One step in a worker first: starting the fork server (torch imported there) is no way's cost.
    Job(preset.models[:1], replace(train, steps=1), queue=WorkerQueue(1), threads=1).start().join()
    split = Job(preset.models, train, queue=WorkerQueue(1), threads=full, viewer_here=True)
    return {"split_steps": train.steps,
            f"split_one_worker_{full}_threads_s": timed(Job(preset.models, train, queue=WorkerQueue(1),
                                                            threads=full, workers=1)),
            "split_one_worker_1_thread_s": timed(Job(preset.models, train, queue=WorkerQueue(1), threads=1)),
            "split_groups": [[preset.models[i].name for i in part] for part in split.parts],
            "split_workers_1_thread_s": timed(split)}


def fusion_bench(nets=(("cifar", 20), ("cifar", 56), ("resnet", 18)), repeats: int = 15,
                 threads: tuple[int, ...] = (1, 2)) -> dict:
    """Horizontal fusion (issue 15's lever; PyTorch's model-ensembling recipe): a plain and a residual net of
    one depth have the same layers (plain = the residual block with beta = 0), so one forward and backward
    over their stacked weights (torch.func.stack_module_state + vmap) could replace two. Median ms of one
    such step (batch 64, no optimiser) for the two nets one after the other (channels_last, as the app
    trains them) and fused, per depth and thread count; and how far the fused gradients are from the two
    nets' own in the same memory format (relative, the larger of the two nets: they must agree). The fused
    way runs in the default format: under vmap, channels_last falls back to a slow path for as_strided_.
    `nets`: (family, depth) pairs; keys read fusion_20_..., fusion_resnet-18_...."""
    out, before = {}, torch.get_num_threads()
    try:
        for family, depth in nets:
            out |= _fusion_at(family, depth, repeats, threads)
    finally:
        torch.set_num_threads(before)
    return out


def _fusion_at(family: str, depth: int, repeats: int, threads: tuple[int, ...]) -> dict:
    import copy

    import torch.nn.functional as nnf
    from torch.func import functional_call, grad, stack_module_state, vmap

    from .config import ModelSpec
    torch.manual_seed(0)
    x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    nets = [build_model(ModelSpec(family=family, depth=depth, beta=b)) for b in (1.0, 0.0)]
    key = f"fusion_{depth}" if family == "cifar" else f"fusion_{family}-{depth}"
    params, buffers = stack_module_state(nets)
    base = copy.deepcopy(nets[0]).to("meta")

    def loss(p, b, x, y):
        return nnf.cross_entropy(functional_call(base, (p, b), (x,)), y)

    fused_grad = vmap(grad(loss), in_dims=(0, 0, None, None))

    def separate(x=x):
        for net in nets:
            net.zero_grad()
            nnf.cross_entropy(net(x), y).backward()

    def fused():
        return fused_grad(params, buffers, x, y)

    grads = fused()
    separate()
    with torch.no_grad():
        out = {f"{key}_grad_diff": max(
            float(torch.cat([(grads[name][i] - p.grad).flatten() for name, p in net.named_parameters()]).norm()
                  / torch.cat([p.grad.flatten() for p in net.parameters()]).norm()) for i, net in enumerate(nets))}
    for net in nets:
        net.to(memory_format=torch.channels_last)
    x_last = x.contiguous(memory_format=torch.channels_last)
    for n in threads:
        torch.set_num_threads(n)
        for name, step in (("separate", lambda: separate(x_last)), ("fused", fused)):
            times = []
            for _ in range(3 + repeats):
                t0 = time.perf_counter()
                step()
                times.append(time.perf_counter() - t0)
            out[f"{key}_{n}t_{name}_ms"] = round(1000 * float(np.median(times[3:])), 1)
        out[f"{key}_{n}t_fused_over_separate"] = round(
            out[f"{key}_{n}t_fused_ms"] / out[f"{key}_{n}t_separate_ms"], 2)
    return out


def ray_bench(address: str) -> dict:
    """The default run in this machine's worker processes, then twice on Ray at `address` (the first run
    starts Ray's worker processes, which import torch), back to back: seconds from start to done, and the
    connection's own time. What Ray adds to one run (README "Scale-out")."""
    from .training.workers import resolve
    preset = PRESETS[DEFAULT_PRESET]
    t0 = time.perf_counter()
    resolve(address)  # "local": this process's own Ray instance, started once (workers.local_head)
    out = {"ray_address": address, "ray_start_s": round(time.perf_counter() - t0, 1)}

    def timed(key: str, ray: str) -> None:
        t0 = time.perf_counter()
        job = Job(preset.models, preset.train, queue=WorkerQueue(1), viewer_here=True, ray=ray).start()
        job.join()
        snap = job.snapshot()
        if snap.state != "done":
            raise RuntimeError(f"the {key} run ended {snap.state}: {snap.error}")
        out[f"{key}_s"] = round(time.perf_counter() - t0, 1)

    Job(preset.models, replace(preset.train, steps=1), queue=WorkerQueue(1), ray="").start().join()  # fork server
    timed("ray_local_workers", "")
    timed("ray_first", address)
    timed("ray_second", address)
    out["ray_overhead"] = round(out["ray_second_s"] / out["ray_local_workers_s"], 2)
    return out


def run_bench(steps: int = 20, first_render: bool = False, lesson: bool = True, presets: bool = False,
              browser: bool = False, split: bool = False, fusion: bool = False, ray: str | None = None) -> dict:
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
    in_browser = browser_bench() if browser else {}
    split_ways = split_bench() if split else {}
    fused = fusion_bench() if fusion else {}
    on_ray = ray_bench(ray) if ray else {}
    lessons = {"lessons": preset_lessons(timed)} if presets else {}
    return {"cores": os.cpu_count(), "torch_threads": threads_per_worker(), "torch": torch.__version__,
            "batch_size": train.batch_size, "matmul_gflops": round(peak, 1), "models": models,
            "lockstep_ms_per_step": round(sum(m["ms_per_step"] for m in models), 1),
            # pairs of steps follow --steps (40 at the default 20): a quick `bench --steps 2` stays quick
            "probe_overhead": round(probe_overhead(deepest, train.batch_size, pairs=max(5, min(40, 2 * steps))), 3),
            "probe_overhead_model": deepest.name,
            "predict_ms": round(draw_ms, 1),
            # peak resident memory of this process after training the default preset (Linux reports KiB)
            "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), **shown, **render, **lessons,
            **in_browser, **split_ways, **fused, **on_ray}
