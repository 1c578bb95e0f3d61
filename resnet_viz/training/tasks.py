"""An experiment (depth sweep, lesion study, loss landscape, shattered gradients) run live in a worker
process, in the same global queue as training jobs, so the cores are never oversubscribed and the web server
stays responsive. Results stream back as they are made (a sweep sends each row as its pair finishes);
progress and cancel go through a small shared tensor, as for jobs.

On a Ray cluster (RESNET_LAB_RAY_ADDRESS, training/workers.py) the sweep's depth-seed pairs are Ray tasks, all
at once across the cluster, their rows streaming in as pairs finish; the other experiments run in one Ray
actor on a copy of the session's models, which the server polls for its progress.
"""
import threading
import time
from dataclasses import dataclass, field

import torch

from ..analysis import experiments as E
from ..config import ModelSpec
from ..data.arrays import ALL_CLASSES, digits
from .engine import QUEUE, WORKER_NAME, WorkerQueue, _context
from .trainer import build_nets
from .workers import connect, ray_address

DONE, TOTAL, STOP = range(3)
KINDS = ("sweep", "lesion", "landscape", "shattered")


def _run(kind: str, params: dict, specs, flats, seed: int, progress: torch.Tensor, send) -> object:
    def on_progress(done, total):
        progress[DONE], progress[TOTAL] = done, total

    def cancelled():
        return bool(progress[STOP])

    if kind == "sweep":
        return E.sweep(params["depths"], params["seeds"], params["train"], E.sweep_base(params.get("family", "cifar")),
                       on_row=lambda r: send(("row", r)),
                       on_progress=on_progress, cancelled=cancelled)
    nets = build_nets(specs, seed, flats)  # the session's models, their latest weights
    dataset = params.get("dataset", "mnist-5k")  # the one they were trained on, and its classes
    classes = tuple(params.get("classes", ALL_CLASSES))
    d = digits(dataset, classes)
    out = {}
    if kind == "lesion":
        for i, (spec, net) in enumerate(zip(specs, nets)):
            out[spec.name] = (E.accuracy(net, d.test_images, d.test_labels, d.stats),
                              E.lesion(net, d.test_images, d.test_labels, cancelled=cancelled, stats=d.stats),
                              [name for name, _ in net.blocks()])
            on_progress(i + 1, len(nets))
    elif kind == "landscape":
        res, chosen = params["resolution"], params["models"]
        starts = E.initial_nets(specs, seed)
        total = len(nets) + len(chosen) * res * res
        done = 0
        for spec, net, start in zip(specs, nets, starts):
            ts, loss = E.interpolation_1d(start, net, cancelled=cancelled, dataset=dataset, classes=classes)
            out[("1d", spec.name)] = (ts, loss)
            done += 1
            on_progress(done, total)
        for spec, net in zip(specs, nets):
            if spec.name in chosen:
                base = done
                out[("2d", spec.name)] = E.landscape_2d(
                    net, res, on_progress=lambda k, n: on_progress(base + k, total), cancelled=cancelled,
                    dataset=dataset, classes=classes)
                done += res * res
    elif kind == "shattered":
        a, b = (d.test_images[i] for i in params.get("pair", (0, 1)))
        starts = E.initial_nets(specs, seed)
        for i, (spec, net, start) in enumerate(zip(specs, nets, starts)):
            out[("init", spec.name)] = E.gradient_correlation(start, a, b, stats=d.stats)
            out[("trained", spec.name)] = E.gradient_correlation(net, a, b, stats=d.stats)
            on_progress(i + 1, len(nets))
    else:
        raise ValueError(kind)
    return out


def task_main(kind, params, specs, flats, seed, progress, threads, conn) -> None:
    """Entry point of the worker process: run, streaming ("row", x) messages, then ("done", result),
    ("cancelled", None) or ("failed", message)."""
    torch.set_num_threads(threads)
    try:
        result = _run(kind, params, specs, flats, seed, progress, conn.send)
        conn.send(("done", result))
    except E.Cancelled:
        conn.send(("cancelled", None))
    except Exception as exc:  # shown in the UI
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


@dataclass(frozen=True)
class TaskView:
    kind: str
    state: str  # queued, running, done, cancelled, failed
    done: int
    total: int
    rows: list = field(default_factory=list)  # streamed so far (the sweep's rows)
    result: object = None
    error: str | None = None
    queue_position: int = 0

    @property
    def finished(self) -> bool:
        return self.state in ("done", "cancelled", "failed")

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")


class Task:
    """One experiment in the background: start(), stop(), touch(), snapshot()."""

    def __init__(self, kind: str, params: dict | None = None, job=None, queue: WorkerQueue = QUEUE,
                 heartbeat_timeout: float | None = None, threads: int | None = None, ray: str | None = None):
        if kind not in KINDS:
            raise ValueError(kind)
        if kind != "sweep" and job is None:
            raise ValueError("this experiment needs a session's trained models")
        self.kind, self.params = kind, dict(params or {})
        if job is not None:
            self.params.setdefault("dataset", job.dataset)
            self.params.setdefault("classes", job.train.class_list)
        self._specs: list[ModelSpec] = list(job.models) if job is not None else []
        self._flats = list(job._flats) if job is not None else []
        self._seed = job.train.seed if job is not None else 0
        self._queue = queue
        self.threads = threads or queue.threads  # the worker's torch threads (engine.run_threads)
        self.heartbeat_timeout, self.heartbeat = heartbeat_timeout, time.monotonic()
        self._progress = torch.zeros(3, dtype=torch.int64).share_memory_()
        self._lock = threading.Lock()
        self._state, self._rows, self._result, self._error = "idle", [], None, None
        self._thread: threading.Thread | None = None
        self.ray_address = ray_address() if ray is None else (ray or None)  # None: this machine's processes

    @property
    def models(self) -> list[ModelSpec]:
        """The models it runs on (empty for a sweep)."""
        return list(self._specs)

    def start(self) -> "Task":
        with self._lock:
            if self._thread is None:
                self._state = "queued"
                self._thread = threading.Thread(target=self._manage, name="resnet-lab-task", daemon=True)
                self._thread.start()
        return self

    def stop(self) -> None:
        self._progress[STOP] = 1

    def touch(self) -> None:
        self.heartbeat = time.monotonic()

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def _cancelled(self) -> bool:
        if self.heartbeat_timeout is not None and time.monotonic() - self.heartbeat > self.heartbeat_timeout:
            self.stop()
        return bool(self._progress[STOP])

    def snapshot(self) -> TaskView:
        with self._lock:
            return TaskView(self.kind, self._state, int(self._progress[DONE]), int(self._progress[TOTAL]),
                            list(self._rows), self._result, self._error, self._queue.position(self))

    def _manage(self) -> None:
        if self.ray_address:
            return self._on_ray()
        if not self._queue.acquire(self, self._cancelled):
            self._set("cancelled")
            return
        try:
            self._set("running")
            ctx = _context()
            receive, send = ctx.Pipe(duplex=False)
            process = ctx.Process(target=task_main, name=WORKER_NAME, daemon=True,
                                  args=(self.kind, self.params, self._specs, self._flats, self._seed,
                                        self._progress, self.threads, send))
            process.start()
            send.close()
            while True:
                if receive.poll(0.2):
                    try:
                        message, value = receive.recv()
                    except EOFError:
                        self._set("failed", error=f"worker exited with code {process.exitcode}")
                        break
                    if message == "row":
                        with self._lock:
                            self._rows.append(value)
                        continue
                    self._set(message, result=value if message == "done" else None,
                              error=value if message == "failed" else None)
                    break
                if self._cancelled() and process.is_alive():
                    process.join(10)  # the experiment checks the flag between evaluations
                if not process.is_alive() and not receive.poll(0):
                    self._set("cancelled" if self._progress[STOP] else "failed",
                              error=None if self._progress[STOP] else f"worker exited with code {process.exitcode}")
                    break
            process.join(5)
            if process.is_alive():
                process.terminate()
        except Exception as exc:  # never take the server down
            self._set("failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            self._queue.release(self)

    def _on_ray(self) -> None:
        """The experiment on the Ray cluster; Ray's scheduler is the queue."""
        def keep(row):
            with self._lock:
                self._rows.append(row)

        def on_progress(done, total):
            self._progress[DONE], self._progress[TOTAL] = done, total

        try:
            ray = connect(self.ray_address)
            self._set("running")
            if self.kind == "sweep":
                p = self.params
                result = E.sweep(p["depths"], p["seeds"], p["train"], E.sweep_base(p.get("family", "cifar")),
                                 on_row=keep, on_progress=on_progress, cancelled=self._cancelled,
                                 ray=self.ray_address)
                return self._set("done", result=result)
            actor = ray.remote(num_cpus=self.threads, max_concurrency=2)(RayExperiment).remote(
                self.kind, self.params, self._specs, [f.clone() for f in self._flats], self._seed, self.threads)
            done = actor.run.remote()
            while not ray.wait([done], timeout=0.2)[0]:
                ints = ray.get(actor.poll.remote(bool(self._cancelled())), timeout=30)
                on_progress(ints[DONE], ints[TOTAL])
            message, value = ray.get(done)
            self._set(message, result=value if message == "done" else None,
                      error=value if message == "failed" else None)
        except E.Cancelled:
            self._set("cancelled")
        except Exception as exc:  # noqa: BLE001 (a lost actor, the cluster gone, ray missing: shown, not raised)
            text = exc.text("en") if hasattr(exc, "text") else f"{type(exc).__name__}: {exc}"
            self._set("failed", error=text.splitlines()[0][:300])

    def _set(self, state: str, result=None, error: str | None = None) -> None:
        with self._lock:
            self._state = state
            if result is not None:
                self._result = result
            if error is not None:
                self._error = error


class RayExperiment:
    """What runs inside a Ray actor: one experiment on a copy of the session's models; `poll` passes the stop
    order in and the progress out while `run` works (max_concurrency=2)."""

    def __init__(self, kind, params, specs, flats, seed, threads):
        torch.set_num_threads(threads)
        self.args = kind, params, specs, flats, seed
        self.progress = torch.zeros(3, dtype=torch.int64)

    def run(self):
        kind, params, specs, flats, seed = self.args
        try:
            return "done", _run(kind, params, specs, flats, seed, self.progress, lambda message: None)
        except E.Cancelled:
            return "cancelled", None
        except Exception as exc:  # noqa: BLE001 (shown in the UI)
            return "failed", f"{type(exc).__name__}: {exc}"

    def poll(self, stop: bool) -> list[int]:
        if stop:
            self.progress[STOP] = 1
        return self.progress.tolist()
