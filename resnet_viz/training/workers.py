"""Where a job's workers run: processes on this machine (the default), or Ray actors on a cluster.

A job (engine.Job) trains its models in one or more workers. Each worker gets its share of the models, their
start weights, the run's settings, a `Control` (orders in, progress out) and a `Record` per model, and the
job's owner thread asks each, a few times a second, `end()` (its last word once it has ended, else None).
Both backends look the same to it:

    ProcessWorker  a process forked from the fork server that trains in the server's shared memory: records
                   and weights need no copy and no message (trainer.worker_main).
    RayWorker      a Ray actor placed by Ray's scheduler on any node with the CPUs (and GPU) it asks for. It
                   trains its own copies; every `end()` call also sends it the job's orders (stop, pause,
                   steps granted) and copies back what it recorded since the last call, and, every
                   WEIGHTS_EVERY_S, its weights into the server's shared buffers, so that Draw, Errors and
                   Gradients show the run as it trains, as with local workers.

`RESNET_LAB_RAY_ADDRESS` picks Ray for the app (`auto`, `ray://host:10001`, or `local` to start a Ray instance
on this machine); `python -m resnet_viz train --ray ADDRESS` for the CLI. `ray` is optional
(requirements-cluster.txt): without it, a run asked of Ray says how to install it, and the app still starts.
"""
import os
import time
from pathlib import Path

import torch

from ..i18n import LabError, tr
from ..metrics import SERIES
from .trainer import Control, Record, build_nets, train_lockstep

RAY_ENV = "RESNET_LAB_RAY_ADDRESS"
WEIGHTS_EVERY_S = 2.0  # how often a Ray worker's weights are copied into the server's models
SYNC_TIMEOUT_S = 30.0  # a Ray worker that does not answer for this long is taken for lost
ROOT = Path(__file__).resolve().parents[2]  # the repository: the code and the bundled datasets Ray ships
# What Ray's workers need of the repository: the package and assets/ (the bundled digits), not the rest.
RAY_EXCLUDES = [".git", ".venv", "venv", "tests", "runs", "**/__pycache__", ".ruff_cache", "*.zip"]


def ray_address() -> str | None:
    """The Ray cluster the app trains on (RESNET_LAB_RAY_ADDRESS), or None: this machine's processes."""
    return os.environ.get(RAY_ENV, "").strip() or None


def connect(address: str):
    """The `ray` module, connected to `address` ("local": a Ray instance started on this machine with its
    cores; "auto" or "ray://host:10001": a running cluster). Connects once per process; LabError when ray is
    not installed or the cluster cannot be reached."""
    try:
        import ray
    except ImportError:
        raise LabError("error.ray_missing", var=RAY_ENV) from None
    if not ray.is_initialized():
        runtime_env = {"working_dir": str(ROOT), "excludes": RAY_EXCLUDES,
                       "env_vars": {"OMP_WAIT_POLICY": "PASSIVE"}}  # as the local workers (engine)
        try:
            # "local" is Ray's own word for a new instance on this machine, even where another one runs
            ray.init(address=address, runtime_env=runtime_env,
                     include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        except Exception as exc:  # noqa: BLE001 (any failure to connect is the user's message, not a crash)
            raise LabError("error.ray_connect", address=address, detail=str(exc).splitlines()[0][:200]) from None
    return ray


class ProcessWorker:
    """A worker process on this machine, training in the server's shared memory."""

    def __init__(self, ctx, name: str, args: tuple, nice: int = 0):
        from .trainer import worker_main
        self._receive, send = ctx.Pipe(duplex=False)
        self.process = ctx.Process(target=worker_main, name=name, daemon=True, args=(*args[:7], send, args[7]))
        self.process.start()
        send.close()
        self.pid = self.process.pid
        self._end: tuple[str, str | None] | None = None
        if nice:  # the worker's main thread; torch threads it starts later inherit it
            os.setpriority(os.PRIO_PROCESS, self.pid, nice)

    @property
    def placed(self) -> bool:
        return True

    def end(self) -> tuple[str, str | None] | None:
        """("done" | "stopped" | "failed", error) once it has ended, else None."""
        if self._end is None and (self._receive.poll() or not self.process.is_alive()):
            try:
                self._end = tuple(self._receive.recv())
                self.process.join(10)
            except EOFError:  # it died without a word: killed, out of memory, or crashed in C
                self.process.join(1)
                self._end = "failed", tr("en", "msg.worker_died", code=self.process.exitcode)
        return self._end

    def halt(self, deadline: float) -> None:
        """It stops at its next step boundary (the STOP order); one still running at `deadline` is ended."""
        self.process.join(max(0.0, deadline - time.monotonic()))
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)


class RayWorker:
    """A Ray actor training its copies of the models; `end()` also exchanges orders, records and weights."""

    def __init__(self, ray, args: tuple, num_gpus: float = 0):
        models, flats, spec, records, control, dataset, threads, sourced = args
        self._ray, self._flats, self._records, self._control = ray, flats, records, control
        self.actor = _trainer_class(ray).options(num_cpus=threads, num_gpus=num_gpus).remote(
            models, [f.clone() for f in flats], spec, [_shape(r) for r in records], dataset, threads, sourced)
        self._ready = self.actor.ready.remote()  # its __init__ done: Ray has placed it
        self._done = self.actor.train.remote()
        self._since, self._weights_at = 0, 0.0
        self.pid = None
        self._placed = False
        self._end: tuple[str, str | None] | None = None

    @property
    def placed(self) -> bool:
        if not self._placed:
            ready, _ = self._ray.wait([self._ready], timeout=0)
            if ready:
                try:
                    self.pid = self._ray.get(ready[0])
                except Exception:  # noqa: BLE001 (it failed to start: end() reports that)
                    self.pid = None
                self._placed = True
        return self._placed

    def end(self) -> tuple[str, str | None] | None:
        """As ProcessWorker.end; on the way, the orders go out and the records (and weights) come in."""
        if self._end is not None:
            return self._end
        ray = self._ray
        finished = bool(ray.wait([self._done], timeout=0)[0])
        if self.placed:
            try:
                self._sync(final=finished)
            except Exception as exc:  # noqa: BLE001 (lost: killed, its node gone, or the cluster)
                if not finished:
                    self._end = "failed", tr("en", "msg.ray_worker_lost", detail=_first_line(exc))
                    return self._end
        if finished:
            try:
                self._end = tuple(ray.get(self._done))
            except Exception as exc:  # noqa: BLE001 (RayActorError, WorkerCrashedError, ...: shown to the user)
                self._end = "failed", tr("en", "msg.ray_worker_lost", detail=_first_line(exc))
        return self._end

    def _sync(self, final: bool = False) -> None:
        c = self._control
        weights = final or time.monotonic() - self._weights_at >= WEIGHTS_EVERY_S
        update = self._ray.get(self.actor.sync.remote([c[Control.STOP], c[Control.PAUSED], c[Control.GRANTED]],
                                                      self._since, weights), timeout=SYNC_TIMEOUT_S)
        step = update["ints"][Control.STEP]
        for rec, rows in zip(self._records, update["records"], strict=True):
            for name, values in rows.items():
                target = getattr(rec, name)
                if name == "counts":
                    target.copy_(values)
                elif values.shape[0]:
                    start = self._since if _per_step(name) else 0
                    target[start:start + values.shape[0]] = values
        if weights:
            for flat, values in zip(self._flats, update["flats"], strict=True):
                flat.copy_(values)
            self._weights_at = time.monotonic()
        for slot in (Control.USED, Control.BLOCKED, Control.PRETRAINED):
            c[slot] = update["ints"][slot]
        c.elapsed[0] = update["elapsed"]
        c[Control.STEP] = step  # last: the rows up to it are in place
        self._since = step

    def halt(self, deadline: float) -> None:
        """The STOP order goes out with the next sync; an actor still training at `deadline` is killed."""
        while time.monotonic() < deadline and self.end() is None:
            time.sleep(0.2)
        if not self._ray.wait([self._done], timeout=0)[0]:
            self._ray.kill(self.actor)


class RayTrainer:
    """What runs inside a Ray actor: the models of one worker, trained by the same loop as a local worker, on
    its own Control and Records, which `sync` exchanges with the server."""

    def __init__(self, models, flats, spec, shapes, dataset, threads, sourced):
        torch.set_num_threads(threads)
        self.spec, self.dataset, self.sourced = spec, dataset, sourced
        self.control = Control()
        self.records = [Record(*shape) for shape in shapes]
        self.flats = flats
        self.nets = build_nets(models, spec.seed, flats)

    def ready(self) -> int:
        return os.getpid()

    def train(self) -> tuple[str, str | None]:
        try:
            return train_lockstep(self.nets, self.spec, self.records, self.control, self.dataset,
                                  sourced=self.sourced), None
        except Exception as exc:  # noqa: BLE001 (reported to the server, shown in the UI)
            return "failed", f"{type(exc).__name__}: {exc}"

    def sync(self, orders: list[int], since: int, weights: bool) -> dict:
        c = self.control
        c[Control.STOP] = max(c[Control.STOP], orders[0])
        c[Control.PAUSED], c[Control.GRANTED] = orders[1], max(c[Control.GRANTED], orders[2])
        step = c[Control.STEP]  # rows up to here are complete (train_loss is written last)
        records = []
        for rec in self.records:
            evals = int(rec.counts[0])
            rows = {s.name: getattr(rec, s.name)[since:step].clone() if s.per != "eval"
                    else getattr(rec, s.name)[:evals].clone() for s in SERIES}
            records.append(rows | {"counts": rec.counts.clone()})
        return {"ints": c.ints.clone().tolist(), "elapsed": float(c.elapsed[0]), "records": records,
                "flats": [f.clone() for f in self.flats] if weights else None}


_ACTOR_CLASSES: dict = {}


def _trainer_class(ray):
    """RayTrainer as a Ray actor class, made once per process: train() runs while sync() answers."""
    if "trainer" not in _ACTOR_CLASSES:
        _ACTOR_CLASSES["trainer"] = ray.remote(max_concurrency=2)(RayTrainer)
    return _ACTOR_CLASSES["trainer"]


def _shape(rec: Record) -> tuple[int, int, int, int]:
    """Record(steps, layers, blocks, evals) arguments that make a record shaped like `rec`."""
    sizes = {"step": 0, "layer": 0, "block": 0, "eval": 0}
    for s in SERIES:
        shape = getattr(rec, s.name).shape
        sizes["step" if s.per != "eval" else "eval"] = shape[0]
        if s.per in ("layer", "block"):
            sizes[s.per] = shape[1]
    return sizes["step"], sizes["layer"], sizes["block"], sizes["eval"]


def _per_step(name: str) -> bool:
    return next(s.per for s in SERIES if s.name == name) != "eval"


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
