"""How long a run will take on this server, said next to Train before anyone waits for it.

A training step costs each model about three forward passes of its batch (forward, and a backward pass that
costs about two), counted from its layer table's FLOPs, as the memory estimate counts its tensors. A job's
workers train their shares of the models side by side (engine.split), so a step takes as long as its costliest
share. The server's pace, in GFLOP/s per worker, starts at PRIOR_GFLOPS and follows the runs it has finished.
"""
import threading
from dataclasses import dataclass

from ..config import TrainSpec
from ..models import layer_table
from .trainer import evaluations

# One single-thread worker training the default lesson's CIFAR nets on a 2-core laptop (docs/measurements.md).
PRIOR_GFLOPS = 50.0
STEP_OVERHEAD_S = 0.004  # per model and step: the batch, the probes and the optimiser's bookkeeping
BACKWARD = 3  # a training step's FLOPs over a forward pass's
CONFIRM_S = 180.0  # a run estimated longer asks first: a class waiting minutes for it is a lesson lost


def split_work(costs: list[int], parts: list[list[int]], images: int) -> list[float]:
    """GFLOP each worker does for one step of `images` per model, forward and backward."""
    return [BACKWARD * images * sum(costs[i] for i in part) / 1e9 for part in parts]


class Pace:
    """This server's training speed per worker: a running mean over the runs it finished, the prior first."""

    def __init__(self, prior: float = PRIOR_GFLOPS):
        self._gflops = prior
        self._lock = threading.Lock()

    @property
    def gflops(self) -> float:
        with self._lock:
            return self._gflops

    def observe(self, gflop_per_step: float, models: int, seconds_per_step: float) -> None:
        """A finished run's costliest worker did `gflop_per_step` for `models` models in `seconds_per_step`."""
        compute = seconds_per_step - models * STEP_OVERHEAD_S
        if gflop_per_step <= 0 or compute <= 0:
            return
        with self._lock:
            self._gflops = 0.5 * self._gflops + 0.5 * gflop_per_step / compute


PACE = Pace()


@dataclass(frozen=True)
class Estimate:
    seconds: float
    gflops: float  # the pace it assumed, per worker

    @property
    def needs_confirmation(self) -> bool:
        return self.seconds > CONFIRM_S


def estimate(models, train: TrainSpec, workers: int, pace: Pace = PACE) -> Estimate:
    """The run's training time here: its steps, its evaluations and its pretraining, at `pace`."""
    from .engine import split  # the engine imports this module
    models = list(models)
    costs = [layer_table(spec).flops for spec in models]
    parts = split(costs, 1 if train.pretrain_steps and any(m.transfer != "none" for m in models) else workers)
    gflops = pace.gflops
    step = max(work / gflops + len(part) * STEP_OVERHEAD_S
               for work, part in zip(split_work(costs, parts, train.batch_size), parts))
    evaluation = max(work / BACKWARD / gflops for work in split_work(costs, parts, train.eval_size))
    pretrain = train.pretrain_steps * step if any(m.transfer != "none" for m in models) else 0.0
    return Estimate(train.steps * step + evaluations(train) * evaluation + pretrain, gflops)
