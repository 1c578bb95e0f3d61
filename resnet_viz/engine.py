"""The lock-step trainer: every model of a comparison in ONE background worker thread.

Each step draws one minibatch and feeds it to each model in turn, so the comparison is fair (same data,
same order, same seed) and the cores are never oversubscribed: two trainers that each use all cores run
~50x slower on a 2-core laptop (DESIGN section 3). A process-wide queue lets at most `max_workers()` jobs
train at once, across all browser sessions; the others wait, with a visible position.

The worker never touches the UI. The UI calls `snapshot()`, which returns copies taken under a lock.
"""
import atexit
import math
import os
import threading
import time
import weakref
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as nnf

from .config import ModelSpec, TrainSpec, check_models
from .data import tensors
from .i18n import tr
from .models import build_model, count_params, forward_flops
from .probes import Probes


def max_workers() -> int:
    """How many jobs may train at once: RESNET_LAB_WORKERS, else one per two cores."""
    env = os.environ.get("RESNET_LAB_WORKERS", "")
    return int(env) if env.isdigit() and int(env) > 0 else max(1, (os.cpu_count() or 1) // 2)


def threads_per_worker() -> int:
    return max(1, (os.cpu_count() or 1) // max_workers())


# torch's intra-op pool is process-wide: size it once so K workers together use the cores, no more.
torch.set_num_threads(threads_per_worker())


class WorkerQueue:
    """First come, first served: at most `slots` jobs hold a worker slot; the rest wait in order."""

    def __init__(self, slots: int):
        self.slots = slots
        self._cond = threading.Condition()
        self._waiting: list[object] = []
        self._running: set[int] = set()

    def acquire(self, job, cancelled) -> bool:
        with self._cond:
            self._waiting.append(job)
            try:
                while not cancelled():
                    if len(self._running) < self.slots and self._waiting[0] is job:
                        self._running.add(id(job))
                        return True
                    self._cond.wait(0.2)
                return False
            finally:
                self._waiting.remove(job)
                self._cond.notify_all()

    def release(self, job) -> None:
        with self._cond:
            self._running.discard(id(job))
            self._cond.notify_all()

    def position(self, job) -> int:
        """1 for the next in line, 0 when not waiting."""
        with self._cond:
            return self._waiting.index(job) + 1 if job in self._waiting else 0

    def busy(self) -> tuple[int, int]:
        with self._cond:
            return len(self._running), len(self._waiting)


QUEUE = WorkerQueue(max_workers())
_LIVE_JOBS: "weakref.WeakSet[Job]" = weakref.WeakSet()


@atexit.register
def _stop_all_jobs() -> None:
    """Stop workers before the interpreter tears torch down under them (else: 'terminate called...')."""
    jobs = list(_LIVE_JOBS)
    for job in jobs:
        job.stop()
    for job in jobs:
        job.join(10)
_BUILD_LOCK = threading.Lock()  # torch's global RNG seeds model init; builds must not interleave


class Stopped(Exception):
    pass


@dataclass
class ModelTrace:
    """Everything recorded for one model; arrays are filled in place up to `n` steps."""

    spec: ModelSpec
    params: int
    flops: int
    layer_names: list[str]
    block_names: list[str]
    steps: int
    n: int = 0
    diverged_step: int = -1
    train_loss: np.ndarray = field(init=False)
    train_acc: np.ndarray = field(init=False)
    seconds: np.ndarray = field(init=False)  # this model's own compute time per step
    grad_norm: np.ndarray = field(init=False)
    act_mean: np.ndarray = field(init=False)
    act_std: np.ndarray = field(init=False)
    eval_step: list[int] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)

    def __post_init__(self):
        self.train_loss = np.full(self.steps, np.nan, np.float32)
        self.train_acc = np.full(self.steps, np.nan, np.float32)
        self.seconds = np.zeros(self.steps, np.float32)
        self.grad_norm = np.full((self.steps, len(self.layer_names)), np.nan, np.float32)
        self.act_mean = np.full((self.steps, len(self.block_names)), np.nan, np.float32)
        self.act_std = np.full((self.steps, len(self.block_names)), np.nan, np.float32)

    def copy(self) -> "ModelView":
        n = self.n
        return ModelView(
            name=self.spec.name, spec=self.spec, params=self.params, flops=self.flops,
            layer_names=list(self.layer_names), block_names=list(self.block_names),
            diverged_step=self.diverged_step, step=np.arange(1, n + 1),
            train_loss=self.train_loss[:n].copy(), train_acc=self.train_acc[:n].copy(),
            seconds=self.seconds[:n].copy(), grad_norm=self.grad_norm[:n].copy(),
            act_mean=self.act_mean[:n].copy(), act_std=self.act_std[:n].copy(),
            eval_step=np.array(self.eval_step, int), test_loss=np.array(self.test_loss, float),
            test_acc=np.array(self.test_acc, float))


@dataclass(frozen=True)
class ModelView:
    """A snapshot of one model's record: plain numpy, safe to keep and plot."""

    name: str
    spec: ModelSpec
    params: int
    flops: int
    layer_names: list[str]
    block_names: list[str]
    diverged_step: int  # -1: trained normally
    step: np.ndarray
    train_loss: np.ndarray
    train_acc: np.ndarray
    seconds: np.ndarray
    grad_norm: np.ndarray  # (steps, layers)
    act_mean: np.ndarray  # (steps, blocks)
    act_std: np.ndarray
    eval_step: np.ndarray
    test_loss: np.ndarray
    test_acc: np.ndarray

    @property
    def diverged(self) -> bool:
        return self.diverged_step >= 0

    def final_train_loss(self, window: int = 20) -> float:
        """Mean training loss over the last `window` finite steps (NaN if none)."""
        finite = self.train_loss[np.isfinite(self.train_loss)]
        return float(finite[-window:].mean()) if finite.size else float("nan")

    def final_train_acc(self, window: int = 20) -> float:
        finite = self.train_acc[np.isfinite(self.train_acc)]
        return float(finite[-window:].mean()) if finite.size else float("nan")

    def steps_per_second(self) -> float:
        total = float(self.seconds.sum())
        return len(self.seconds) / total if total > 0 else 0.0


@dataclass(frozen=True)
class Snapshot:
    state: str  # idle, queued, running, paused, done, stopped, failed
    step: int
    steps: int
    queue_position: int
    elapsed: float
    error: str | None
    train: TrainSpec
    models: list[ModelView]
    pause_requested: bool = False  # Pause was pressed; the worker stops at the next step boundary

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")

    @property
    def finished(self) -> bool:
        return self.state in ("done", "stopped", "failed")


class Job:
    """Trains `models` with `train` in one background thread, with start/pause/resume/step/stop."""

    def __init__(self, models, train: TrainSpec, queue: WorkerQueue = QUEUE, dataset: str = "mnist-5k",
                 heartbeat_timeout: float | None = None):
        self.models = check_models(models)
        self.heartbeat_timeout = heartbeat_timeout  # stop when nobody called touch() for this long
        self.train = train
        self.dataset = dataset
        self._queue = queue
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._state = "idle"
        self._step = 0
        self._error: str | None = None
        self._stop = False
        self._paused = False
        self._step_budget = 0  # single steps granted while paused
        self._blocked = False  # the worker is waiting at a step boundary (truly paused)
        self._running_since: float | None = None  # None while queued, paused or finished
        self._elapsed = 0.0
        self._thread: threading.Thread | None = None
        self.heartbeat = time.monotonic()
        self._traces: list[ModelTrace] = []
        for spec in self.models:
            with _BUILD_LOCK:  # building draws from torch's global RNG, which a worker may have just seeded
                model = build_model(spec)
                flops = forward_flops(spec)
            self._traces.append(ModelTrace(
                spec, count_params(model), flops, [n for n, _ in model.weight_layers()],
                [n for n, _ in model.blocks()], train.steps))

    # ---- control (any thread) -------------------------------------------------------------------
    def start(self, paused: bool = False) -> "Job":
        with self._lock:
            if self._thread is not None:
                return self  # pressing Train twice does not start a second worker
            self._paused = paused
            self._state = "queued"
            self._thread = threading.Thread(target=self._run, name="resnet-lab-worker", daemon=True)
            _LIVE_JOBS.add(self)
            self._thread.start()
        return self

    def pause(self) -> None:
        with self._lock:
            self._paused = True
            self._wake.notify_all()

    def resume(self) -> None:
        with self._lock:
            self._paused = False
            self._step_budget = 0
            self._wake.notify_all()

    def step(self, n: int = 1) -> None:
        """While paused, train exactly n more steps, then stay paused."""
        with self._lock:
            self._paused = True
            self._step_budget += n
            self._wake.notify_all()

    def stop(self) -> None:
        with self._lock:
            self._stop = True
            self._wake.notify_all()

    def touch(self) -> None:
        """A viewer is still watching (see heartbeat_timeout)."""
        self.heartbeat = time.monotonic()

    def _abandoned(self) -> bool:
        return self.heartbeat_timeout is not None and time.monotonic() - self.heartbeat > self.heartbeat_timeout

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def run_blocking(self, on_step=None) -> "Snapshot":
        """Train in the calling thread (the CLI); on_step(step, losses) is called after every step."""
        self._on_step = on_step
        with self._lock:
            self._state = "queued"
        self._run()
        return self.snapshot()

    def snapshot(self) -> Snapshot:
        with self._lock:
            since = self._running_since
            elapsed = self._elapsed + (time.monotonic() - since if since is not None else 0.0)
            state = "paused" if self._state == "running" and self._blocked else self._state
            return Snapshot(state, self._step, self.train.steps, self._queue.position(self),
                            elapsed, self._error, self.train, [t.copy() for t in self._traces],
                            self._paused and self._state in ("queued", "running"))

    # ---- the worker -----------------------------------------------------------------------------
    _on_step = None

    def _run(self) -> None:
        if not self._queue.acquire(self, lambda: self._stop or self._abandoned()):
            self._finish("stopped")
            return
        try:
            with self._lock:
                self._state, self._running_since = "running", time.monotonic()
            self._train()
            self._finish("stopped" if self._stop else "done")
        except Stopped:
            self._finish("stopped")
        except Exception as exc:  # a broken run must not take the server down; show it instead
            self._finish("failed", f"{type(exc).__name__}: {exc}")
        finally:
            self._queue.release(self)

    def _finish(self, state: str, error: str | None = None) -> None:
        with self._lock:
            self._clock_off()
            self._state, self._error = state, error

    def _clock_off(self) -> None:
        if self._running_since is not None:
            self._elapsed += time.monotonic() - self._running_since
            self._running_since = None

    def _wait_for_go(self) -> None:
        """Block at a step boundary while paused; raise Stopped when asked to stop."""
        with self._lock:
            while True:
                if self._stop or self._abandoned():
                    raise Stopped
                if not self._paused:
                    return
                if self._step_budget:
                    self._step_budget -= 1
                    return
                self._clock_off()
                self._blocked = True
                self._wake.wait(1.0)  # wake now and then to notice an abandoned job
                self._blocked = False
                self._running_since = time.monotonic()

    def _train(self) -> None:
        spec = self.train
        data = tensors(self.dataset)
        nets, opts, probes = [], [], []
        for s in self.models:
            with _BUILD_LOCK:
                torch.manual_seed(spec.seed)  # the same start for models of the same architecture
                net = build_model(s).to(memory_format=torch.channels_last)
            nets.append(net)
            probes.append(Probes(net))
            opts.append(_optimizer(net, spec))
        order = torch.Generator().manual_seed(spec.seed)
        perm, cursor = torch.randperm(len(data.train_y), generator=order), 0
        test_x = data.test_x[:spec.eval_size].contiguous(memory_format=torch.channels_last)
        test_y = data.test_y[:spec.eval_size]
        for step in range(spec.steps):
            self._wait_for_go()
            if cursor + spec.batch_size > len(perm):
                perm, cursor = torch.randperm(len(data.train_y), generator=order), 0
            idx = perm[cursor:cursor + spec.batch_size]
            cursor += spec.batch_size
            x = data.train_x[idx].contiguous(memory_format=torch.channels_last)
            y = data.train_y[idx]
            lr = _lr_at(step, spec)
            for net, opt, probe, trace in zip(nets, opts, probes, self._traces):
                if trace.diverged_step >= 0:
                    continue
                for g in opt.param_groups:
                    g["lr"] = lr
                self._train_step(step, net, opt, probe, trace, x, y)
            last = step + 1 == spec.steps
            if (step + 1) % spec.eval_every == 0 or last:
                self._evaluate(step + 1, nets, probes, test_x, test_y)
            with self._lock:
                self._step = step + 1
                for t in self._traces:
                    t.n = step + 1
            if self._on_step is not None:
                self._on_step(step + 1, [float(t.train_loss[step]) for t in self._traces])
        for p in probes:
            p.remove()

    def _train_step(self, step, net, opt, probe, trace, x, y) -> None:
        t0 = time.perf_counter()
        net.train()
        logits = net(x)
        loss = nnf.cross_entropy(logits, y)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            with self._lock:
                trace.diverged_step = step + 1
                trace.train_loss[step] = loss_value
            probe.read()  # drop this step's activation stats
            return
        opt.zero_grad(set_to_none=False)
        loss.backward()
        opt.step()
        readout = torch.cat((probe.read(), (logits.argmax(1) == y).float().mean().reshape(1))).numpy()
        n_layers, n_blocks = len(trace.layer_names), len(trace.block_names)
        with self._lock:
            trace.train_loss[step] = loss_value
            trace.train_acc[step] = readout[-1]
            trace.grad_norm[step] = readout[:n_layers]
            trace.act_mean[step] = readout[n_layers:n_layers + n_blocks]
            trace.act_std[step] = readout[n_layers + n_blocks:n_layers + 2 * n_blocks]
            trace.seconds[step] = time.perf_counter() - t0

    def _evaluate(self, step, nets, probes, x, y) -> None:
        for net, probe, trace in zip(nets, probes, self._traces):
            if trace.diverged_step >= 0:
                continue
            probe.active = False
            net.eval()
            with torch.inference_mode():
                logits = net(x)
                loss = nnf.cross_entropy(logits, y).item()
                acc = (logits.argmax(1) == y).float().mean().item()
            probe.active = True
            with self._lock:
                trace.eval_step.append(step)
                trace.test_loss.append(loss)
                trace.test_acc.append(acc)


def _optimizer(net, spec: TrainSpec) -> torch.optim.Optimizer:
    if spec.optimizer == "adam":
        return torch.optim.Adam(net.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    return torch.optim.SGD(net.parameters(), lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)


def _lr_at(step: int, spec: TrainSpec) -> float:
    """Linear warm-up from lr/10 over warmup_steps, then constant (runs here are far shorter than an epoch
    schedule would need)."""
    if step < spec.warmup_steps:
        return spec.lr * (0.1 + 0.9 * step / spec.warmup_steps)
    return spec.lr


def diverged_message(view: ModelView, lang: str = "en") -> str:
    return tr(lang, "msg.diverged", name=view.name, step=view.diverged_step) if view.diverged else ""
