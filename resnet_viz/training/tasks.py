"""An experiment (depth sweep, lesion study, loss landscape, shattered gradients) run live in a worker
process, in the same global queue as training jobs, so the cores are never oversubscribed and the web server
stays responsive. Results stream back as they are made (a sweep sends each row as its pair finishes);
progress and cancel go through a small shared tensor, as for jobs; the lifecycle is background.py's.

On a Ray cluster (RESNET_LAB_RAY_ADDRESS, training/workers.py) the worker process is the experiment's Ray
driver (ray_task_main): the sweep's depth-seed pairs are Ray tasks, all at once across the cluster, their rows
streaming in as pairs finish; the other experiments run in one Ray actor on a copy of the session's models,
which the driver polls for its progress.
"""
from dataclasses import dataclass, field

import torch

from ..analysis import experiments as E
from ..config import ModelSpec
from ..data.arrays import ALL_CLASSES, digits
from ..i18n import LabError, tr
from .background import Background
from .engine import QUEUE, WorkerQueue
from .trainer import build_nets, die_with_server, say, watch_parent
from .workers import CONNECTED, PLACED, SYNC_TIMEOUT_S, ProcessWorker, connect

DONE, TOTAL, STOP, STAGE = range(4)  # the progress tensor's slots (STAGE: a Ray driver's, workers.py)
KINDS = ("sweep", "lesion", "landscape", "shattered")


def _run(kind: str, params: dict, specs, flats, seed: int, progress: torch.Tensor, send) -> object:
    def on_progress(done, total):
        progress[DONE], progress[TOTAL] = done, total

    def cancelled():
        return bool(progress[STOP])

    if kind == "sweep":
        return E.sweep(params["depths"], params["seeds"], params["train"], E.sweep_base(params.get("family", "cifar")),
                       on_row=lambda r: send(("row", r)),
                       on_progress=on_progress, cancelled=cancelled, ray=params.get("ray"))
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
    die_with_server()
    torch.set_num_threads(threads)
    try:
        result = _run(kind, params, specs, flats, seed, progress, conn.send)
        say(conn, ("done", result))
    except E.Cancelled:
        say(conn, ("cancelled", None))
    except LabError as exc:  # Ray missing or out of reach (the sweep's driver)
        say(conn, ("failed", exc.text("en")))
    except Exception as exc:  # shown in the UI
        say(conn, ("failed", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def ray_task_main(address, kind, params, specs, flats, seed, progress, threads, conn) -> None:
    """An experiment's Ray driver (a process of its own, workers.py): the sweep's pairs as Ray tasks (task_main
    with the sweep's `ray`), or the other experiments in one RayExperiment actor, polled for its progress and
    told to stop; then the experiment's end on `conn`, as task_main."""
    watch_parent(lambda: progress.__setitem__(STOP, 1))
    try:
        ray = connect(address)
        progress[STAGE] = CONNECTED
        if kind == "sweep":  # one-thread pairs, each waiting in Ray's queue on its own; progress: pairs done
            progress[STAGE] = PLACED
            return task_main(kind, params | {"ray": address}, specs, flats, seed, progress, threads, conn)
        actor = ray.remote(num_cpus=threads, max_concurrency=2)(RayExperiment).remote(
            kind, params, specs, [f.clone() for f in flats], seed, threads)
        done = actor.run.remote()
        while not ray.wait([done], timeout=0.2)[0]:
            ints = ray.get(actor.poll.remote(bool(progress[STOP])), timeout=SYNC_TIMEOUT_S)
            progress[DONE], progress[TOTAL], progress[STAGE] = ints[DONE], ints[TOTAL], PLACED
        say(conn, ray.get(done))
    except LabError as exc:
        say(conn, ("failed", exc.text("en")))
    except Exception as exc:  # noqa: BLE001 (a lost actor, the cluster gone: shown, not raised)
        say(conn, ("failed", tr("en", "msg.ray_worker_lost", detail=str(exc).strip().splitlines()[0][:200])))
    if not conn.closed:
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
    cluster: bool = False  # on a Ray cluster: queue_position is in this server's line for it

    @property
    def finished(self) -> bool:
        return self.state in ("done", "cancelled", "failed")

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")


class Task(Background):
    """One experiment in the background: start(), stop(), touch(), snapshot()."""

    STOPPED = "cancelled"

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
        self.threads = threads or queue.threads  # the worker's torch threads (engine.run_threads)
        self._progress = torch.zeros(4, dtype=torch.int64).share_memory_()
        self._rows, self._result, self._error = [], None, None
        self._init_background(queue, heartbeat_timeout, ray)

    @property
    def models(self) -> list[ModelSpec]:
        """The models it runs on (empty for a sweep)."""
        return list(self._specs)

    def start(self) -> "Task":
        with self._lock:
            self._launch()
        return self

    def stop(self) -> None:
        self._progress[STOP] = 1

    def _stopped(self) -> bool:
        return bool(self._progress[STOP])

    def snapshot(self) -> TaskView:
        with self._lock:
            return TaskView(self.kind, self._state, int(self._progress[DONE]), int(self._progress[TOTAL]),
                            list(self._rows), self._result, self._error, self.queue_position(), self.on_cluster)

    def _start_workers(self, ctx, address: str | None) -> list:
        args = (self.kind, self.params, self._specs, self._flats, self._seed, self._progress, self.threads)
        if address is None:
            return [ProcessWorker(ctx, task_main, args, on_row=self._keep)]
        progress = self._progress
        return [ProcessWorker(ctx, ray_task_main, (address, *args), on_row=self._keep,
                              stage=lambda: int(progress[STAGE]))]

    def _keep(self, row) -> None:
        with self._lock:
            self._rows.append(row)

    def _finish(self, state: str, value=None) -> None:
        with self._lock:
            self._state = "cancelled" if state == "stopped" else state
            if state == "done":
                self._result = value
            elif state == "failed":
                self._error = value


class RayExperiment:
    """What runs inside a Ray actor: one experiment on a copy of the session's models; `poll` passes the stop
    order in and the progress out while `run` works (max_concurrency=2)."""

    def __init__(self, kind, params, specs, flats, seed, threads):
        torch.set_num_threads(threads)
        self.args = kind, params, specs, flats, seed
        self.progress = torch.zeros(4, dtype=torch.int64)

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
