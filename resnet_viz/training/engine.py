"""Training jobs: the models of one comparison, trained on the job's cores in worker processes.

Each step draws one minibatch and feeds it to each model in turn (trainer.py), so the comparison is fair
(same data, same order, same seed) and the cores are never oversubscribed: two trainers that each use all
cores run ~50x slower on a 2-core laptop (measured: two 2-thread trainers on 2 cores ran one conv 50x slower). A process-wide queue lets at most
`max_workers()` jobs train at once, across all browser sessions; the others wait, with a visible position.

A job with several cores splits its models by cost into one single-thread worker per core (`split`), each
training its share in lock-step on the same minibatches: these small convolutions gain little from a second
OpenMP thread, and a thread team waits at every barrier for the thread that lost its core to the browser,
while two processes do not wait on each other (the default lesson: 14.3 s split vs 22.5 s in one
single-thread worker and 31.6 s in one two-thread worker, `bench --split`). A model trains alone with one
thread either way, so its records are the same whichever worker trains it.

The workers are separate processes so that the web server's own Python work cannot stall them on the GIL;
they write their measurements into shared memory, and `snapshot()` hands the UI plain numpy copies of them.
"""
import atexit
import contextlib
import itertools
import os
import threading
import weakref
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..config import (
    DEFAULT_PRESET,
    PRESETS,
    ModelSpec,
    TrainSpec,
    check_run,
    pretraining,
    sources,
)
from ..data.arrays import digits
from ..i18n import LabError, tr
from ..metrics import SERIES
from ..models import count_params, layer_table
from . import device
from .memory import check_memory, estimate
from .background import Background
from .trainer import (
    Control,
    Record,
    build_nets,
    evaluations,
    train_lockstep,
    worker_main,
)
from .pace import PACE, split_work
from .weights import share_weights
from .workers import ProcessWorker, context, ray_address, ray_job_main, resolve

PACE_KNOWN_STEPS = 10  # steps after which a run's pace is known (the first ones are slow)


def max_workers() -> int:
    """How many jobs may train at once: RESNET_LAB_WORKERS, else one per two cores."""
    env = os.environ.get("RESNET_LAB_WORKERS", "")
    return int(env) if env.isdigit() and int(env) > 0 else max(1, (os.cpu_count() or 1) // 2)


def threads_per_worker(slots: int | None = None) -> int:
    """torch threads for each of `slots` workers training at once (default: the server's): RESNET_LAB_THREADS,
    else the cores shared. Fixed per server, not chosen by load: a run's floats depend on its thread count, and
    identical settings must give identical records (training/sharing.py)."""
    return _threads_set() or max(1, (os.cpu_count() or 1) // (slots or max_workers()))


def _threads_set() -> int | None:
    """RESNET_LAB_THREADS when it is a positive whole number (anything else is ignored)."""
    env = os.environ.get("RESNET_LAB_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else None


def run_threads(viewer_here: bool) -> int:
    """torch threads for an experiment's worker started from a page: one fewer than the worker's share when
    that page's browser runs on this machine (a teacher's laptop), leaving it and the web server a core. With
    the page open, the default lesson trained 1.7x faster on 2 cores in one worker with one thread than with
    two (`bench --browser`): a 2-thread team waits at every OpenMP barrier for the thread that lost its core to
    the browser. RESNET_LAB_THREADS, when set, is used as it is. (Training jobs split their cores among
    single-thread workers instead: `Job`, `worker_threads`.)"""
    threads = threads_per_worker()
    return max(1, threads - 1) if viewer_here and _threads_set() is None else threads


class WorkerQueue:
    """First come, first served: at most `slots` jobs hold a worker slot; the rest wait in order. Each worker
    trains with `threads` torch threads (default: the cores shared among the slots), at CPU priority `nice`
    (19: only the cycles nothing else wants)."""

    def __init__(self, slots: int, threads: int | None = None, nice: int = 0):
        self.slots = slots
        self.threads = threads or threads_per_worker(slots)
        self.nice = nice
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


def worker_threads(cores: int, workers: int, viewer_here: bool) -> int:
    """torch threads for each of a job's `workers` sharing its `cores`: one each when the page's browser runs
    on this machine and RESNET_LAB_THREADS is not set (run_threads: no thread team to wait for a core the
    browser took), else the cores shared."""
    return 1 if viewer_here and _threads_set() is None else max(1, cores // workers)


def split(costs: list[int], parts: int) -> list[list[int]]:
    """Model indices in up to `parts` groups of about equal cost, each in run order: the costliest model goes
    first, each to the group with the least cost so far."""
    groups: list[list[int]] = [[] for _ in range(max(1, min(parts, len(costs))))]
    load = [0] * len(groups)
    for i in sorted(range(len(costs)), key=lambda i: -costs[i]):
        g = load.index(min(load))
        groups[g].append(i)
        load[g] += costs[i]
    return [sorted(g) for g in groups if g]


QUEUE = WorkerQueue(max_workers())
_LIVE_JOBS: "weakref.WeakSet[Job]" = weakref.WeakSet()
_JOB_IDS = itertools.count(1)
_BUILD_LOCK = threading.Lock()  # in-process builds draw from torch's global RNG; they must not interleave


@atexit.register
def _stop_all_jobs() -> None:
    """Stop workers when the server exits, so no orphan process trains on."""
    jobs = list(_LIVE_JOBS)
    for job in jobs:
        job.stop()
    for job in jobs:
        job.join(10)


def warm_up() -> None:
    """In the background, so that the first Train is quick: start the fork server (and its torch import), then
    work out the default lesson's costs (its memory check and layer tables, all cached): torch's meta-device
    code imports and runs for the first time there, and made the first Job of a server take 2.2 s instead of
    0.1 while the page waited for the run's first status. A server on its own Ray (RESNET_LAB_RAY_ADDRESS=local)
    then starts that Ray instance, which took the first Train 3.2 s (a failure is left to that Train to say)."""
    def run():
        context()
        preset = PRESETS[DEFAULT_PRESET]
        with _BUILD_LOCK:  # as a Job's own builds
            estimate(preset.models, preset.train)
            for spec in preset.models:
                layer_table(spec)
        if ray_address() == "local":
            with contextlib.suppress(LabError):
                resolve("local")

    threading.Thread(target=run, name="resnet-lab-warm-up", daemon=True).start()


@dataclass(frozen=True)
class ModelInfo:
    spec: ModelSpec
    params: int
    flops: int
    layer_names: list[str]
    block_names: list[str]
    full_params: int = 0  # for a CSP model: the same net without CSP, to compare costs; else 0
    full_flops: int = 0
    table: object = None  # models.Table: the layer table (plain rows, no tensors), for the Lab and the diagram


@dataclass(frozen=True)
class ModelView:
    """A snapshot of one model's record: plain numpy, safe to keep and plot. Each metrics.SERIES entry reads
    as an attribute (view.train_loss, view.grad_norm: (steps, layers), ...), trimmed to what was recorded."""

    name: str
    spec: ModelSpec
    params: int
    flops: int
    layer_names: list[str]
    block_names: list[str]
    diverged_step: int  # -1: trained normally
    step: np.ndarray  # 1..steps recorded
    series: dict[str, np.ndarray]  # metrics.NAMES -> values
    full_params: int = 0  # CSP models: the same net without CSP (0 otherwise)
    full_flops: int = 0
    table: object = None  # models.Table of the net on 1x28x28 digits

    def __getattr__(self, name: str) -> np.ndarray:
        series = self.__dict__.get("series") or {}
        if name in series:
            return series[name]
        raise AttributeError(f"{type(self).__name__} has no attribute or series {name!r}")

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
    pretrained: int = 0  # transfer learning: pretraining steps done, of pretrain_total, before step 1
    pretrain_total: int = 0
    cluster: bool = False  # trained on a Ray cluster: queue_position is in this server's line for it
    stopping: bool = False  # Stop was pressed; the workers end at the next step boundary
    replay: float = 0.0  # a finished run played back (training/replay.py) at this speed; 0: a run itself
    weights_step: int = -1  # the step the job's weights are at, when not `step` (a replay's: the run's end)

    @property
    def weights_at(self) -> int:
        """The step the job's nets hold the weights of (what Draw and Errors classify with)."""
        return self.weights_step if self.weights_step >= 0 else self.step

    @property
    def pretraining(self) -> bool:
        return self.state in ("running", "paused") and self.step == 0 and self.pretrained < self.pretrain_total

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")

    @property
    def finished(self) -> bool:
        return self.state in ("done", "stopped", "failed")


class Job(Background):
    """Trains `models` with `train` in background worker processes, with start/pause/resume/step/stop: one
    per core of its `threads` (default: its queue slot's share), at most `workers`, each training its share of
    the models (`parts`) with `self.threads` torch threads (worker_threads). Transfer models start from
    `start_from` (a finished Job: this session's run, or a reopened saved one) where it has a model of their
    architecture, else from the run's pretraining step."""

    def __init__(self, models, train: TrainSpec, queue: WorkerQueue = QUEUE, dataset: str = "mnist-5k",
                 heartbeat_timeout: float | None = None, start_from: "Job | None" = None,
                 _weights_given: bool = False, threads: int | None = None, viewer_here: bool = False,
                 workers: int | None = None, ray: str | None = None):
        models = tuple(models)
        lenders = sources(models, start_from.models) if start_from is not None else {}
        # a reopened run's weights come from its file: none of its models needs pretraining again
        self.sourced = frozenset(i for i, m in enumerate(models) if m.transfer != "none") if _weights_given \
            else frozenset(lenders)
        self.models = check_run(models, train, self.sourced)
        self._pretrain_total = len(pretraining(self.models, self.sourced)) * train.pretrain_steps
        self._init_background(queue, heartbeat_timeout, ray)
        # On this machine, a missing GPU is the user's message now, not the worker's crash; on Ray, the run's
        # driver asks the cluster for one (workers._gpus).
        on_gpu = train.device == "cuda" if self.ray_address else device.resolve(train.device).type != "cpu"
        self.cores = threads or queue.threads  # its slot's share of the cores, for its workers to share
        # One worker per core, unless a GPU trains the run or a net is pretrained first (the pretraining of
        # an architecture serves all its transfer models: one worker does it once, in order).
        with _BUILD_LOCK:
            costs = [layer_table(spec).flops for spec in self.models]
        self.parts = split(costs, 1 if self._pretrain_total or on_gpu else workers or self.cores)
        # what its costliest worker does per step: a finished run tells the server's pace (pace.PACE)
        self._work = max(zip(split_work(costs, self.parts, train.batch_size), map(len, self.parts)))
        self.threads = worker_threads(self.cores, len(self.parts), viewer_here)  # each worker's torch threads
        # A run too big for this server's memory is refused before anything starts (on Ray, the server only
        # keeps the records and a copy of the weights; a node out of memory ends its actor: "worker lost").
        if not _weights_given and not self.ray_address:
            check_memory(self.models, train, parts=self.parts)
        self.train = train
        self.dataset = dataset
        self.uid = next(_JOB_IDS)  # unique for the server's life (an id() is reused once a job is gone)
        self._grant_lock = threading.Lock()  # Step (a page's thread) and catching up (the owner) both grant
        self._error: str | None = None
        self._info: list[ModelInfo] = []
        self._records: list[Record] = []
        # The models themselves live here, their weights in shared memory that the worker trains in place:
        # the server reads the latest weights at any time (drawn digits, feature maps; see weights.py).
        self.nets = build_nets(self.models, train.seed, build_lock=_BUILD_LOCK)
        self._flats = []
        for spec, model in zip(self.models, self.nets):
            self._flats.append(share_weights(model))
            model.eval()
            with _BUILD_LOCK:
                table = layer_table(spec)
                full = layer_table(replace(spec, csp=0.0, name="")) if spec.csp else None
            layers, blocks = [n for n, _ in model.weight_layers()], [n for n, _ in model.blocks()]
            full_costs = (full.params, full.flops) if full else (0, 0)
            self._info.append(ModelInfo(spec, count_params(model), table.flops, layers, blocks, *full_costs,
                                        table=table))
            self._records.append(Record(train.steps, len(layers), len(blocks), evaluations(train))
                                 .share_memory_())
        for i, j in lenders.items():  # into the shared buffers, which the worker adopts as its start
            self.nets[i].load_backbone(start_from.nets[j])
        # one Control per worker: its own progress, the same orders (pause, step, stop) written to each
        self._controls = [Control().share_memory_() for _ in self.parts]

    @property
    def info(self) -> list[ModelInfo]:
        """What each model is, fixed for the job's life: spec, costs, layer and block names, layer table."""
        return list(self._info)

    @classmethod
    def reopen(cls, saved, queue: WorkerQueue = QUEUE) -> "Job":
        """A finished job from a saved run (runfile.read_run): its records, weights and state as saved."""
        job = cls(saved.models, saved.train, queue=queue, dataset=saved.dataset, _weights_given=True)
        job._load(saved)
        return job

    def _load(self, saved) -> None:
        n = saved.step
        for i, (rec, arrays, net, weights) in enumerate(zip(self._records, saved.arrays, self.nets,
                                                            saved.state_dicts)):
            for series in SERIES:
                values, target = arrays[series.name], getattr(rec, series.name)
                rows = values.shape[0] if series.per == "eval" else n
                if values.shape[1:] != target.shape[1:] or values.shape[0] != rows or rows > target.shape[0]:
                    raise LabError("error.run_file", detail=f"model {i} {series.name}: shape {values.shape} does not fit")
                target[:rows] = torch.from_numpy(np.ascontiguousarray(values)).to(target.dtype)
            rec.counts[0], rec.counts[1] = arrays["eval_step"].shape[0], saved.diverged_steps[i]
            try:
                net.load_state_dict(weights)  # copies into the shared buffers the pages read
            except (RuntimeError, ValueError) as e:
                raise LabError("error.run_file", detail=f"model {i}: {str(e)[:200]}") from None
        for c in self._controls:
            c[Control.STEP] = n
            c.elapsed[0] = saved.elapsed
        self._state = saved.state

    # ---- control (any thread) -------------------------------------------------------------------
    def start(self, paused: bool = False) -> "Job":
        with self._lock:
            if self._thread is not None or self._state != "idle":
                return self  # pressing Train twice does not start a second worker; a reopened run stays
            digits(self.dataset)  # missing or damaged files: the user's message now, not a failed worker
            if self.train.pretrain_dataset and self._pretrain_total:
                digits(self.train.pretrain_dataset)
            for c in self._controls:
                c[Control.PAUSED] = int(paused)
            _LIVE_JOBS.add(self)
            self._launch()
        return self

    def pause(self) -> None:
        for c in self._controls:
            c[Control.PAUSED] = 1

    def resume(self) -> None:
        with self._grant_lock:
            for c in self._controls:
                c[Control.GRANTED] = c[Control.USED]
                c[Control.PAUSED] = 0

    def step(self, n: int = 1) -> None:
        """While paused, train exactly n more steps, then stay paused."""
        with self._grant_lock:
            for c in self._controls:
                c[Control.GRANTED] = max(c[Control.GRANTED], c[Control.USED]) + n  # a pretraining step counts too
                c[Control.PAUSED] = 1

    def stop(self) -> None:
        for c in self._controls:
            c[Control.STOP] = 1

    def _catch_up(self) -> None:
        """While paused, workers behind the one furthest on train up to its step, so that the paused run shows
        every model at one step (they pause wherever Pause finds them)."""
        controls = self._controls
        if len(controls) < 2 or not controls[0][Control.PAUSED]:
            return
        lead = max(c[Control.STEP] for c in controls)
        with self._grant_lock:
            for c in controls:  # a blocked worker is at a step boundary: its STEP is where it stands
                if c[Control.BLOCKED] and c[Control.STEP] < lead and c[Control.USED] >= c[Control.GRANTED]:
                    c[Control.GRANTED] = c[Control.USED] + lead - c[Control.STEP]

    def _stopped(self) -> bool:
        return bool(self._controls[0][Control.STOP])

    def run_blocking(self, on_step=None) -> Snapshot:
        """Train in this process and thread (the CLI, benchmarks); on_step(step, losses) after every step."""
        with self._lock:
            self._state = "running"
        self.parts, self._controls = [list(range(len(self.models)))], self._controls[:1]  # all in this thread
        try:
            state = train_lockstep(self.nets, self.train, self._records, self._controls[0], self.dataset, on_step,
                                   self.sourced)
            self._finish(state)
        except Exception as exc:
            self._finish("failed", f"{type(exc).__name__}: {exc}")
        return self.snapshot()

    def snapshot(self) -> Snapshot:
        controls = self._controls
        with self._lock:
            state, error = self._state, self._error
        steps = [c[Control.STEP] for c in controls]
        n = min(steps)  # every model has trained this far
        if state == "running" and n == max(steps) < self.train.steps and all(c[Control.BLOCKED] for c in controls):
            state = "paused"  # every worker waits at the same step (those behind catch up first: _catch_up)
        stopping = bool(controls[0][Control.STOP]) and state in ("queued", "running", "paused")
        return Snapshot(state, n, self.train.steps, self.queue_position(),
                        max(float(c.elapsed[0]) for c in controls), error,
                        self.train, [_view(info, rec, n) for info, rec in zip(self._info, self._records)],
                        bool(controls[0][Control.PAUSED]) and state in ("queued", "running", "paused"),
                        sum(c[Control.PRETRAINED] for c in controls), self._pretrain_total, self.on_cluster,
                        stopping)

    # ---- the owner thread (background.py) ----------------------------------------------------------
    def _start_workers(self, ctx, address: str | None) -> list:
        """One worker process per part here; on Ray, one driver process placing one actor per part."""
        parts = [([self.models[i] for i in part], [self._flats[i] for i in part], self.train,
                  [self._records[i] for i in part], control, self.dataset, self.threads,
                  frozenset(part.index(i) for i in self.sourced if i in part))
                 for part, control in zip(self.parts, self._controls, strict=True)]
        if address is None:
            return [ProcessWorker(ctx, worker_main, args, self._queue.nice) for args in parts]
        controls = self._controls
        return [ProcessWorker(ctx, ray_job_main, (address, parts, self.train.device),
                              stage=lambda: min(c[Control.STAGE] for c in controls))]

    def _poll(self) -> None:
        self._catch_up()

    def _finish(self, state: str, error: str | None = None) -> None:
        with self._lock:
            self._state, self._error = state, error
        snap = self.snapshot()
        if state == "done" and not self.ray_address and snap.step >= PACE_KNOWN_STEPS and snap.elapsed > 0 \
                and not self._pretrain_total:
            PACE.observe(self._work[0], self._work[1], snap.elapsed / snap.step)


def _view(info: ModelInfo, rec: Record, n: int) -> ModelView:
    rows = {"eval": int(rec.counts[0])}
    series = {}
    for s in SERIES:
        values = getattr(rec, s.name)[:rows.get(s.per, n)].numpy()
        series[s.name] = values.astype(float) if s.per == "eval" and not s.integer else values.copy()
    return ModelView(
        name=info.spec.name, spec=info.spec, params=info.params, flops=info.flops,
        full_params=info.full_params, full_flops=info.full_flops, table=info.table,
        layer_names=list(info.layer_names), block_names=list(info.block_names),
        diverged_step=rec.diverged_step, step=np.arange(1, n + 1), series=series)


def diverged_message(view: ModelView, lang: str = "en") -> str:
    return tr(lang, "msg.diverged", name=view.name, step=view.diverged_step) if view.diverged else ""
