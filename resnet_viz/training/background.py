"""A run in the background: the one lifecycle training jobs (engine.Job) and experiments (tasks.Task) share.

`start` hands the run to an owner thread, which waits its turn, starts the run's workers (workers.py: processes
on this machine, or the run's Ray driver), asks them a few times a second how they are, stops the others when
one fails, stops them all when the run is stopped or its last viewer has left (`touch` renews the heartbeat),
and records how the run ended. Its turn:

    local  a slot of this server's first-come-first-served queue (engine.WorkerQueue): at most as many runs
           train at once as the server has cores for; the page shows the run's place in the line.
    Ray    Ray's scheduler is the queue: the run waits until the cluster has the CPUs its workers ask for.
           This server's runs wait for it in a line of their own (RAY_LINE), one at a time: Ray places
           pending work in no promised order, and a line that runs in the order of the clicks is the one a
           class can read its places in. (Ray's queue also holds other servers' and jobs' work.)
"""
import threading
import time

from ..i18n import LabError
from .workers import CONNECT_TIMEOUT_S, HALT_S, context, outcome, ray_address, resolve


class RayLine:
    """This server's runs on Ray: those waiting for the cluster to place them, in order, and those placed."""

    def __init__(self):
        self._lock = threading.Condition()
        self._waiting: list[object] = []
        self._running: set[int] = set()

    def wait(self, run) -> None:
        with self._lock:
            self._waiting.append(run)

    def turn(self, run, cancelled) -> bool:
        """Block until `run` is first in line (False: it was cancelled first)."""
        with self._lock:
            while not cancelled():
                if self._waiting and self._waiting[0] is run:
                    return True
                self._lock.wait(0.2)
            return False

    def placed(self, run) -> None:
        with self._lock:
            if run in self._waiting:
                self._waiting.remove(run)
            self._running.add(id(run))
            self._lock.notify_all()

    def release(self, run) -> None:
        with self._lock:
            if run in self._waiting:
                self._waiting.remove(run)
            self._running.discard(id(run))
            self._lock.notify_all()

    def position(self, run) -> int:
        """1 for the first waiting, 0 when not waiting."""
        with self._lock:
            return self._waiting.index(run) + 1 if run in self._waiting else 0

    def busy(self) -> tuple[int, int]:
        """(placed and running, waiting), as engine.WorkerQueue.busy."""
        with self._lock:
            return len(self._running), len(self._waiting)


RAY_LINE = RayLine()


class Background:
    """What a subclass gives: `stop()` and `_stopped()` (its stop order, in shared memory its workers read),
    `_start_workers(ctx, address)` (the workers, with `address` the resolved Ray address or None), `_finish(state,
    value)`; and may give `_poll()` (a look each round) and STOPPED (the state of a run stopped before it
    started)."""

    STOPPED = "stopped"

    def _init_background(self, queue, heartbeat_timeout: float | None, ray: str | None) -> None:
        self._queue = queue
        self.heartbeat_timeout = heartbeat_timeout  # stop when nobody called touch() for this long
        self.heartbeat = time.monotonic()
        self.ray_address = ray_address() if ray is None else (ray or None)  # None: this machine's processes
        self._lock = threading.Lock()
        self._state = "idle"
        self._thread: threading.Thread | None = None
        self._workers: list = []

    # ---- any thread ---------------------------------------------------------------------------------
    def _launch(self) -> bool:
        """Start the owner thread; False when the run was started already (call with self._lock held)."""
        if self._thread is not None or self._state != "idle":
            return False
        self._state = "queued"
        if self.ray_address:
            RAY_LINE.wait(self)  # in line from the click on, as in the local queue
        self._thread = threading.Thread(target=self._manage, name=f"resnet-lab-{type(self).__name__.lower()}",
                                        daemon=True)
        self._thread.start()
        return True

    def touch(self) -> None:
        """A viewer is still watching (see heartbeat_timeout)."""
        self.heartbeat = time.monotonic()

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    @property
    def on_cluster(self) -> bool:
        return bool(self.ray_address)

    def queue_position(self) -> int:
        """1 for the next in line (this server's queue, or its runs waiting for the Ray cluster), 0 when not
        waiting."""
        return (RAY_LINE if self.ray_address else self._queue).position(self)

    def _abandoned(self) -> bool:
        return self.heartbeat_timeout is not None and time.monotonic() - self.heartbeat > self.heartbeat_timeout

    def _cancelled(self) -> bool:
        if self._abandoned():
            self.stop()
        return self._stopped()

    # ---- the owner thread ---------------------------------------------------------------------------
    def _manage(self) -> None:
        line = RAY_LINE if self.ray_address else self._queue
        turn = RAY_LINE.turn(self, self._cancelled) if self.ray_address else self._queue.acquire(self, self._cancelled)
        if not turn:
            line.release(self)
            self._finish(self.STOPPED, None)
            return
        try:
            address = resolve(self.ray_address) if self.ray_address else None
            if self._cancelled():  # left while Ray's own instance started
                return self._finish(self.STOPPED, None)
            workers = self._workers = self._start_workers(context(), address)
            started = time.monotonic()
            ends: dict[int, tuple] = {}
            while len(ends) < len(workers):
                for i, worker in enumerate(workers):
                    if i not in ends and (end := worker.end()) is not None:
                        ends[i] = end
                        if end[0] != "done":  # a failed or stopped worker stops the run
                            self.stop()
                if self._state == "queued" and all(w.placed for w in workers):
                    with self._lock:
                        self._state = "running"
                    if self.ray_address:
                        RAY_LINE.placed(self)
                elif self._state == "queued" and time.monotonic() - started > CONNECT_TIMEOUT_S \
                        and not all(w.connected for w in workers):
                    raise LabError("error.ray_connect", address=self.ray_address,
                                   detail=f"no answer in {CONNECT_TIMEOUT_S:.0f} s")
                self._poll()
                if self._cancelled():
                    self._reap()
                if len(ends) < len(workers):
                    time.sleep(0.2)
            self._finish(*outcome(ends.values()))
        except LabError as exc:  # Ray missing or out of reach: the user's message
            self.stop()
            self._reap()
            self._finish("failed", exc.text("en"))
        except Exception as exc:  # a broken run must not take the server down; show it instead
            self.stop()
            self._reap()
            self._finish("failed", f"{type(exc).__name__}: {exc}")
        finally:
            line.release(self)

    def _poll(self) -> None:
        """A look at the run each round, while its workers work."""

    def _reap(self) -> None:
        """Workers stop at their next step boundary; one that does not in HALT_S is ended."""
        deadline = time.monotonic() + HALT_S
        for worker in self._workers:
            worker.halt(deadline)
