"""A finished run shown again as if it trained: the same records, step by step, at the pace it trained.

A teacher who rehearsed a lesson on the server has that run cached (sharing.RUNS): pressing Train in class
would show it finished at once, and the live demo would be gone. A Replay plays it back instead, with no
worker and no training cost: its snapshot() rises through the recorded steps as wall time passes (at the
run's own pace, 2x or 4x), trimmed to the step reached, and ends as the run ended. The pages read it as they
read a Job (snapshot, models, nets, info, train, dataset, touch, pause, resume, step, stop). Its nets are the
finished run's: the weights at the end of the run, which the snapshot says (Snapshot.weights_step).
"""
import threading
import time

import numpy as np

from ..metrics import SERIES
from .engine import _JOB_IDS, ModelView, Snapshot

SPEEDS = (1.0, 2.0, 4.0)
MIN_STEP_S = 0.05  # a run with no recorded time (or a hand-made file) still unfolds, one step per this


def step_times(snap: Snapshot) -> np.ndarray:
    """When each recorded step ended, in seconds of the run's training time: the models' own per-step
    seconds (the `seconds` series), scaled so the last step ends at the run's elapsed time (which also holds
    the evaluations and the work between steps)."""
    n = snap.step
    if n == 0:
        return np.zeros(0)
    per_step = np.zeros(n)
    for view in snap.models:
        per_step += np.nan_to_num(np.asarray(view.seconds[:n], dtype=float), nan=0.0).clip(min=0.0)
    total = float(per_step.sum())
    if total <= 0:
        per_step, total = np.full(n, MIN_STEP_S), MIN_STEP_S * n
    elapsed = snap.elapsed if snap.elapsed > 0 else total
    return np.cumsum(per_step) * (elapsed / total)


def trimmed(view: ModelView, step: int) -> ModelView:
    """`view` as it stood after `step` steps: per-step series cut there, evaluations made after it left out."""
    evals = int(np.searchsorted(view.eval_step, step, side="right"))
    series = {s.name: view.series[s.name][:evals if s.per == "eval" else step] for s in SERIES}
    diverged = view.diverged_step if 0 <= view.diverged_step <= step else -1
    return ModelView(name=view.name, spec=view.spec, params=view.params, flops=view.flops,
                     layer_names=view.layer_names, block_names=view.block_names, diverged_step=diverged,
                     step=view.step[:step], series=series, full_params=view.full_params,
                     full_flops=view.full_flops, table=view.table)


class Replay:
    """`source` (a finished Job: the class's shared run, the reference run, an opened file) played back from
    step 0 at `speed` times the pace it trained. `clock` is the wall clock (time.monotonic)."""

    def __init__(self, source, speed: float = 1.0, clock=time.monotonic):
        self.source = source
        self._final = source.snapshot()
        self._ends = step_times(self._final)
        self._clock = clock
        self._lock = threading.Lock()
        self._speed = float(speed)
        self._position = 0.0  # seconds of the run's time shown at `_since`
        self._since = clock()
        self._paused = False
        self._stopped = False
        self.uid = next(_JOB_IDS)  # unique among jobs and replays: the pages cache per uid
        self.heartbeat = clock()
        # what the pages read of a job: the source's, unchanged
        self.models, self.nets, self.train, self.dataset = source.models, source.nets, source.train, source.dataset
        self.info = source.info

    # ---- the clock --------------------------------------------------------------------------------------
    @property
    def speed(self) -> float:
        return self._speed

    @property
    def end_step(self) -> int:
        """The step the run ended at (where the replay ends)."""
        return self._final.step

    @property
    def length(self) -> float:
        """The replay's length in the run's seconds."""
        return float(self._ends[-1]) if self._ends.size else 0.0

    def _now(self) -> float:
        """The run's time shown now (call with the lock held)."""
        if self._paused or self._stopped:
            return self._position
        return min(self.length, self._position + (self._clock() - self._since) * self._speed)

    def _hold(self, position: float) -> None:
        self._position, self._since = min(self.length, max(0.0, position)), self._clock()

    def set_speed(self, speed: float) -> None:
        with self._lock:
            self._hold(self._now())
            self._speed = float(speed)

    def skip_to_end(self) -> None:
        """The whole run at once (also after Stop: a stopped replay is the run's records cut short)."""
        with self._lock:
            self._stopped, self._paused = False, False
            self._hold(self.length)

    # ---- what a Job offers the pages --------------------------------------------------------------------
    def start(self, paused: bool = False) -> "Replay":
        return self

    def pause(self) -> None:
        with self._lock:
            self._hold(self._now())
            self._paused = True

    def resume(self) -> None:
        with self._lock:
            self._hold(self._now())
            self._paused = False

    def step(self, n: int = 1) -> None:
        """Pause, and show `n` more steps."""
        with self._lock:
            shown = self._shown(self._now())
            self._paused = True
            self._hold(float(self._ends[min(shown + n, len(self._ends)) - 1]) if self._ends.size else 0.0)

    def stop(self) -> None:
        with self._lock:
            if not self._stopped:
                self._hold(self._now())
                self._stopped = True

    def join(self, timeout: float | None = None) -> bool:
        return True  # nothing runs in the background

    def touch(self) -> None:
        self.heartbeat = self._clock()

    def queue_position(self) -> int:
        return 0

    @property
    def on_cluster(self) -> bool:
        return False

    def _shown(self, position: float) -> int:
        """Steps whose end the run's time `position` has reached."""
        return int(np.searchsorted(self._ends, position + 1e-9, side="right"))

    def snapshot(self) -> Snapshot:
        with self._lock:
            position, paused, stopped = self._now(), self._paused, self._stopped
        final = self._final
        step = self._shown(position)
        if step >= final.step:
            state, step = final.state, final.step
        else:
            state = "stopped" if stopped else "paused" if paused else "running"
        elapsed = float(self._ends[step - 1]) if step else 0.0
        models = final.models if step == final.step else [trimmed(v, step) for v in final.models]
        return Snapshot(state, step, final.steps, 0, elapsed, final.error if state == final.state else None,
                        final.train, models, pause_requested=paused and state in ("running", "paused"),
                        pretrained=final.pretrain_total, pretrain_total=final.pretrain_total, replay=self._speed,
                        weights_step=final.step)
