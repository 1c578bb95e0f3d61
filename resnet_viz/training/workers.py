"""Where a run's work happens: worker processes on this machine (the default), or a Ray cluster.

A background run (background.py: a training job or an experiment) starts its workers here and asks each, a few
times a second, `end()` (its last word once it has ended, else None), `placed` (started, not waiting for a
cluster's CPUs) and, to stop, `halt(deadline)`. Every worker is a process on this machine (ProcessWorker),
forked from the fork server, that reports on a pipe: ("row", value) messages as it goes, then its end
(state, value). What the process does is the backend:

    local  it trains (trainer.worker_main) or runs the experiment (tasks.task_main) itself, in the server's
           shared memory: records and weights need no copy and no message.
    Ray    it is the run's Ray driver (ray_job_main, tasks.ray_task_main): it places the work on the cluster
           as Ray actors or tasks that ask for the CPUs (and GPU) they need, and relays between them and the
           server's shared memory: orders out (stop, pause, steps granted); records, progress and, every
           WEIGHTS_EVERY_S, weights in, so that Draw, Errors and Gradients show the run as it trains, as
           with local workers. A driver of its own per run, not the server: Ray ends a driver whose cluster
           went away, and that must not be the web server; and the actors of a driver that ends, however it
           ends, are ended by Ray with it, so nothing trains on for nobody.

`RESNET_LAB_RAY_ADDRESS` picks Ray for the app (`auto`, `HOST:6379`, `ray://host:10001`, or `local`: a Ray
instance this server starts on its own machine, `local_head`); `python -m resnet_viz train --ray ADDRESS` for
the CLI. `ray` is optional (requirements-cluster.txt): without it, a run asked of Ray says how to install it,
and the app still starts.
"""
import atexit
import multiprocessing
import multiprocessing.spawn
import os
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import torch

from ..i18n import LabError, tr
from ..metrics import SERIES
from .trainer import Control, Record, build_nets, say, train_lockstep, watch_parent

RAY_ENV = "RESNET_LAB_RAY_ADDRESS"
WEIGHTS_EVERY_S = 2.0  # how often a Ray worker's weights are copied into the server's models
SYNC_TIMEOUT_S = 30.0  # a Ray worker that does not answer for this long is taken for lost
CONNECT_TIMEOUT_S = 60.0  # a driver not connected by then fails its run (ray.init waits minutes for a dead GCS)
HALT_S = 10.0  # a stopped run's workers get this long to finish their step before they are ended
ROOT = Path(__file__).resolve().parents[2]  # the repository: the code and the bundled datasets Ray ships
# What Ray's workers need of the repository: the package and assets/ (the bundled digits), not the rest.
RAY_EXCLUDES = [".git", ".venv", "venv", "tests", "runs", "**/__pycache__", ".ruff_cache", "*.zip"]
# A Ray driver's stage, in its run's stage slot (Control.STAGE, tasks.STAGE): the server shows a run as queued
# on the cluster until it is PLACED, and fails it when it is not CONNECTED within CONNECT_TIMEOUT_S.
CONNECTING, CONNECTED, PLACED = range(3)
WORKER_NAME = "resnet-lab-worker"


def ray_address() -> str | None:
    """The Ray cluster the app trains on (RESNET_LAB_RAY_ADDRESS), or None: this machine's processes."""
    return os.environ.get(RAY_ENV, "").strip() or None


def require_ray() -> None:
    """LabError, saying how to install it, when the ray package is missing."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise LabError("error.ray_missing", var=RAY_ENV) from None


def resolve(address: str) -> str:
    """The address a Ray driver connects to: "local" is this server's own Ray instance (local_head)."""
    require_ray()
    return local_head() if address == "local" else address


def connect(address: str):
    """The `ray` module, connected to `address` (after `resolve`: "auto", "HOST:PORT" or "ray://HOST:10001"),
    in the process that drives the run: a Ray driver process, the CLI's sweep. Connects once per process;
    LabError when ray is not installed or the cluster cannot be reached."""
    if "RAY_AUTH_MODE" not in os.environ and _token_available():
        # Ray's clusters ask for their token (README "Scale-out"); ray reads the mode when it is imported
        os.environ["RAY_AUTH_MODE"] = "token"
    require_ray()
    import ray
    if not ray.is_initialized():
        _reachable(address)
        runtime_env = {"working_dir": str(ROOT), "excludes": RAY_EXCLUDES,
                       "env_vars": {"OMP_WAIT_POLICY": "PASSIVE"}}  # as the local workers (_ensure_forkserver)
        try:
            ray.init(address=address, runtime_env=runtime_env,
                     include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        except Exception as exc:  # noqa: BLE001 (any failure to connect is the user's message, not a crash)
            raise LabError("error.ray_connect", address=address, detail=_first_line(exc)) from None
    return ray


def _reachable(address: str) -> None:
    """A quick TCP look at HOST:PORT before ray.init, which waits minutes for a cluster that is not there."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or not port:  # "auto": Ray finds it from this machine's own files
        return
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        raise LabError("error.ray_connect", address=address, detail=_first_line(exc)) from None


def _token_available() -> bool:
    return bool(os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
                or (Path.home() / ".ray" / "auth_token").exists())


# ---- processes on this machine ---------------------------------------------------------------------

_FORKSERVER_LOCK = threading.Lock()


def context():
    """forkserver: workers fork from a clean process that has torch imported already (start in well under a
    second, and no inherited server threads); spawn where there is no forkserver (Windows, macOS default)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = torch.multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["resnet_viz.training.trainer"])
        _ensure_forkserver()
        return ctx
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spawned workers read it at their start
    return torch.multiprocessing.get_context("spawn")


def _ensure_forkserver() -> None:
    """Start the fork server with OMP_WAIT_POLICY=PASSIVE in its environment only. Workers share 2 cores with
    the web server and often the browser: OpenMP threads that sleep instead of spinning at barriers trained
    the default lesson 1.6x faster with the page open (99 s vs 160 s). The variable is not left in this
    process's environment: libgomp reads it once, when torch loads, so a server (or test process) that
    loaded torch after it was set would run its own inference, and every subprocess it starts, passive,
    about 1.9x slower on an idle machine."""
    from multiprocessing import forkserver
    with _FORKSERVER_LOCK:
        saved = os.environ.get("OMP_WAIT_POLICY")
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            forkserver.ensure_running()
        finally:
            if saved is None:
                os.environ.pop("OMP_WAIT_POLICY", None)


_preparation_data = multiprocessing.spawn.get_preparation_data


def _worker_preparation_data(name):
    """multiprocessing re-imports the parent's __main__ script in every child; ours is `streamlit_app.py`
    (Streamlit installs each run's script as __main__), pytest, or a test's script, none of which a worker
    needs (its target lives in the package), and an app script imported outside Streamlit runs the whole
    page in bare mode. Our workers (by name) start without it. A hook, not a swap of sys.modules: Streamlit's
    script threads set __main__ on every rerun, so a swap would race them."""
    data = _preparation_data(name)
    if name == WORKER_NAME:
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
    return data


multiprocessing.spawn.get_preparation_data = _worker_preparation_data


class ProcessWorker:
    """A process on this machine running `target(*args, conn)`, which sends ("row", value) messages (handed to
    `on_row`) and then its end, (state, value). `stage()`: a Ray driver's stage (else it is placed at once)."""

    def __init__(self, ctx, target, args: tuple, nice: int = 0, on_row=None, stage=None):
        self._receive, send = ctx.Pipe(duplex=False)
        self.process = ctx.Process(target=target, name=WORKER_NAME, daemon=True, args=(*args, send))
        self.process.start()
        send.close()
        self.pid = self.process.pid
        self._on_row, self._stage = on_row, stage
        self._end: tuple | None = None
        self._halted = False
        if nice:  # the worker's main thread; torch threads it starts later inherit it
            os.setpriority(os.PRIO_PROCESS, self.pid, nice)

    @property
    def connected(self) -> bool:
        return self._stage is None or self._stage() >= CONNECTED

    @property
    def placed(self) -> bool:
        return self._stage is None or self._stage() >= PLACED

    def end(self) -> tuple | None:
        """("done" | "stopped" | "cancelled" | "failed", value) once it has ended, else None."""
        try:
            while self._end is None and self._receive.poll():
                message = self._receive.recv()
                if message[0] == "row":
                    if self._on_row is not None:
                        self._on_row(message[1])
                else:
                    self._end = tuple(message)
                    self.process.join(10)
        except EOFError:  # it died without a word: ended by halt(), killed, out of memory, or crashed in C
            self._end = self._died()
        if self._end is None and not self.process.is_alive() and not self._receive.poll():
            self._end = self._died()
        return self._end

    def _died(self) -> tuple:
        self.process.join(1)
        if self._halted:
            return "stopped", None
        if self._stage is not None:  # a Ray driver: Ray ends one at once whose node's raylet went away (exit 1)
            return "failed", tr("en", "msg.ray_worker_lost",
                                detail=f"the run's Ray driver ended, exit code {self.process.exitcode}")
        return "failed", tr("en", "msg.worker_died", code=self.process.exitcode)

    def halt(self, deadline: float) -> None:
        """It stops at its next step boundary (the STOP order); one still running at `deadline` is ended (a
        Ray driver's actors with it)."""
        self.process.join(max(0.0, deadline - time.monotonic()))
        if self.process.is_alive():
            self._halted = True
            self.process.terminate()
            self.process.join(5)


def outcome(ends) -> tuple:
    """A run's end from its workers' ends: the first failure, else a stop, else done (with its value)."""
    order = ("failed", "stopped", "cancelled", "done")
    return min(ends, key=lambda end: order.index(end[0]) if end[0] in order else 0)


# ---- this server's own Ray instance ----------------------------------------------------------------

_HEAD: dict = {}
_HEAD_LOCK = threading.Lock()
HEAD_START_S = 120.0


def local_head() -> str:
    """The address of this server's own Ray instance (RESNET_LAB_RAY_ADDRESS=local), started on first use in a
    process of its own on this machine's cores, and again if it has gone; it ends with the server."""
    with _HEAD_LOCK:
        head = _HEAD.get("head")
        if head is None or not head["process"].is_alive():
            ctx = context()
            receive, send = ctx.Pipe(duplex=False)
            hold, keep = ctx.Pipe(duplex=False)  # the head runs until `keep` closes: at the server's exit
            process = ctx.Process(target=head_main, name=WORKER_NAME, daemon=True,
                                  args=(os.cpu_count() or 1, hold, send))
            process.start()
            send.close()
            hold.close()
            if not receive.poll(HEAD_START_S):
                process.terminate()
                raise LabError("error.ray_connect", address="local", detail=f"no Ray instance in {HEAD_START_S:.0f} s")
            try:
                ok, value = receive.recv()
            except EOFError:
                ok, value = False, f"it exited with code {process.exitcode}"
            if not ok:
                raise LabError("error.ray_connect", address="local", detail=value)
            head = _HEAD["head"] = {"process": process, "keep": keep, "address": value}
        return head["address"]


@atexit.register
def _stop_head() -> None:
    head = _HEAD.pop("head", None)
    if head is not None:
        head["keep"].close()  # the head shuts Ray down and exits
        head["process"].join(15)


def head_main(cpus: int, hold, conn) -> None:
    """The process of this server's own Ray instance: Ray's head on this machine, with its cores; it says its
    address, then lives until the server closes `hold` (or exits, however it exits)."""
    try:
        import ray
        ray.init(num_cpus=cpus, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        say(conn, (True, ray.get_runtime_context().gcs_address))
    except Exception as exc:  # noqa: BLE001 (the server shows it)
        say(conn, (False, _first_line(exc)))
        return
    finally:
        conn.close()
    try:
        hold.recv()
    except EOFError:
        pass
    ray.shutdown()


# ---- a training job on Ray -------------------------------------------------------------------------

def ray_job_main(address: str, parts: list, device: str, conn) -> None:
    """A training job's Ray driver (a process of its own, see the module's note): one RayTrainer actor per
    part, each asking for its threads' CPUs (and a GPU when the run's device asks for one); orders, records
    and weights relayed to and from the server's shared memory until every actor has ended; then the run's
    end on `conn`."""
    controls = [args[4] for args in parts]
    watch_parent(lambda: [c.__setitem__(Control.STOP, 1) for c in controls])
    try:
        ray = connect(address)
        gpus = _gpus(ray, device)
        for c in controls:
            c[Control.STAGE] = CONNECTED
        # All of a job's actors or none: a placement group reserves their CPUs at once, so that two jobs
        # each half placed never wait on each other for the cluster's last cores.
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
        group = placement_group([{"CPU": args[6]} | ({"GPU": gpus} if gpus else {}) for args in parts],
                                strategy="PACK")
        workers = [RayWorker(ray, args, gpus, PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=i))
                   for i, args in enumerate(parts)]
        ends: dict[int, tuple] = {}
        deadline = None
        while len(ends) < len(workers):
            for i, worker in enumerate(workers):
                if i not in ends and (end := worker.end()) is not None:
                    ends[i] = end
                    if end[0] != "done":  # a failed or stopped worker stops the run
                        for c in controls:
                            c[Control.STOP] = 1
                if worker.placed:
                    controls[i][Control.STAGE] = PLACED
            if deadline is None and controls[0][Control.STOP]:
                deadline = time.monotonic() + HALT_S - 2  # before the server's own deadline ends this process
            if deadline is not None and time.monotonic() > deadline:
                for i, worker in enumerate(workers):
                    if i not in ends:
                        worker.kill()
                        ends[i] = "stopped", None
            time.sleep(0.2)
        say(conn, outcome(ends.values()))
    except LabError as exc:
        say(conn, ("failed", exc.text("en")))
    except Exception as exc:  # noqa: BLE001 (the cluster gone mid-call, ...: shown to the user)
        say(conn, ("failed", tr("en", "msg.ray_worker_lost", detail=_first_line(exc))))
    finally:
        conn.close()


def _gpus(ray, device: str) -> float:
    """GPUs each actor asks for: one when the run asks for "cuda" (LabError when the cluster has none, rather
    than a run Ray can never place) or for "auto" on a cluster that has one."""
    has = ray.cluster_resources().get("GPU", 0) >= 1
    if device == "cuda" and not has:
        raise LabError("error.cluster_gpu")
    return 1 if device in ("cuda", "auto") and has else 0


class RayWorker:
    """A Ray actor training its copies of the models, seen from its driver (ray_job_main): `end()` also
    exchanges orders, records and weights with the server's shared memory."""

    def __init__(self, ray, args: tuple, num_gpus: float = 0, strategy=None):
        models, flats, spec, records, control, dataset, threads, sourced = args
        self._ray, self._flats, self._records, self._control = ray, flats, records, control
        self.actor = _trainer_class(ray).options(num_cpus=threads, num_gpus=num_gpus,
                                                 scheduling_strategy=strategy).remote(
            models, [f.clone() for f in flats], spec, [_shape(r) for r in records], dataset, threads, sourced)
        self._ready = self.actor.ready.remote()  # its __init__ done: Ray has placed it
        self._done = self.actor.train.remote()
        self._since, self._weights_at = 0, 0.0
        self._placed = False
        self._end: tuple[str, str | None] | None = None

    @property
    def placed(self) -> bool:
        if not self._placed:  # an actor that failed to start counts too: end() reports it
            self._placed = bool(self._ray.wait([self._ready], timeout=0)[0])
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

    def kill(self) -> None:
        """End the actor now (a stopped run's actor that did not stop in time)."""
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

    def ready(self) -> None:
        """Answers once the actor is placed and built."""

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
            counts = rec.counts.clone()
            counts[0] = evals  # the evaluations copied above, not one made since
            records.append(rows | {"counts": counts})
        ints = c.ints.clone().tolist()
        ints[Control.STEP] = step  # the step the rows above reach, not one the training thread made since
        return {"ints": ints, "elapsed": float(c.elapsed[0]), "records": records,
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
