"""The science checks' trainings (test_science.py), started in the background as soon as the suite is
collected, so that their minutes overlap the rest of the suite instead of adding to it.

They are real runs on the engine's own workers (the code the app trains with), two at a time with one torch
thread each (on 2 cores that trains 1.4x as much per second as one run with two threads) and at the lowest
CPU priority (nice 19): they take the cycles the other tests leave idle, and the tests that run meanwhile
keep the cores they ask for. A check marked `@pytest.mark.training(kind, seed=...)` (the seed may come from
its parametrization) waits for its own run, under a hang guard, and reads it through the `trained` fixture.
Run alone, a science check simply waits for its runs to train.
"""
import time

from speed import hang_s

from resnet_viz.config import PRESETS, SWEEP_TRAIN, ModelSpec, TrainSpec, replace
from resnet_viz.training.engine import Job, WorkerQueue

DEFAULT = PRESETS["degradation"]
FIG4 = PRESETS["imagenet_fig4"]
REZERO = PRESETS["rezero"]
TRANSFER = PRESETS["transfer"]
GUARD_S = 900  # one run's wait, before the machine's slowdown: a hang guard (a run takes 20-110 s here)


def run_key(kind: str, seed: int) -> tuple[str, int]:
    """The run a check reads. The default lesson at seed 0 is the first 120 steps of the sweep's seed-0 run
    (the same start and batches, and a constant learning rate: training depends neither on the budget nor
    on the other models), so it trains once."""
    if kind == "default" and seed == DEFAULT.train.seed == 0:
        return "sweep", 0
    return kind, seed


def training(kind: str, seed: int) -> tuple[list[ModelSpec], TrainSpec]:
    """What each kind of check trains (live at seed 0; seeds 1 and 2 of the default lesson, Fig. 4 and the
    sweep are checked on the committed references, assets/reference/, pinned to the code by their checks).
    sweep: the default preset's plain-20, plain-56 and res-56 (what its lesson compares; res-20 no check
      reads) at the depth sweep's budget (200 steps).
    default: the same three nets at the default preset's budget (at seed 0, the sweep run's first steps).
    fig4: the Fig. 4 preset's plain-18, plain-34 and ResNet-34 (option-A shortcuts), what its check compares;
      ResNet-18 is left out (the parameter check reads the preset's layer tables, not a trained net).
    rezero: the ReZero preset's ReZero net alone (its plain and ordinary partners stay at chance).
    transfer: the transfer preset's from-scratch and fine-tuned nets (its pretraining included)."""
    if kind == "sweep":
        return list(DEFAULT.compared), replace(SWEEP_TRAIN, seed=seed)
    if kind == "default":
        return list(DEFAULT.compared), replace(DEFAULT.train, seed=seed)
    if kind == "fig4":
        return list(FIG4.compared), replace(FIG4.train, seed=seed, eval_size=100)
    if kind == "rezero":
        return [m for m in REZERO.models if m.learn_alpha], replace(REZERO.train, seed=seed)
    if kind == "transfer":
        return [m for m in TRANSFER.models if m.transfer != "frozen"], replace(TRANSFER.train, seed=seed)
    raise ValueError(f"no training kind {kind!r}")


def wanted(items) -> list[tuple[str, int]]:
    """(kind, seed) of every run the collected checks read, in the order they run."""
    keys = []
    for item in items:
        mark = item.get_closest_marker("training")
        if mark is None:
            continue
        key = run_key(mark.args[0], mark.kwargs["seed"] if "seed" in mark.kwargs else item.callspec.params["seed"])
        if key not in keys:
            keys.append(key)
    return keys


class Trainings:
    def __init__(self):
        self.jobs: dict[tuple[str, int], Job] = {}
        self.waited: dict[tuple[str, int], float] = {}  # seconds the checks reading the run waited for it, summed

    def start(self, items) -> None:
        keys = wanted(items)
        if not keys:
            return
        pool = WorkerQueue(2, threads=1, nice=19)
        self.jobs = {key: Job(*training(*key), queue=pool).start() for key in keys}

    def get(self, kind: str, seed: int = 0) -> Job:
        kind, seed = run_key(kind, seed)
        job = self.jobs[kind, seed]
        t0 = time.monotonic()
        assert job.join(hang_s(GUARD_S)), f"the {kind} training (seed {seed}) did not finish"
        self.waited[kind, seed] = self.waited.get((kind, seed), 0.0) + time.monotonic() - t0
        snap = job.snapshot()
        assert snap.state == "done", (kind, seed, snap.state, snap.error)
        return job

    def stop(self) -> None:
        for job in self.jobs.values():
            job.stop()
        for job in self.jobs.values():
            job.join(30)

    def describe(self) -> str:
        """One line per run for the end of the suite: its training time and how long the checks reading it waited."""
        lines = ["science runs, trained in the background (nice 19, 2 at a time, 1 thread each):"]
        for (kind, seed), job in self.jobs.items():
            snap = job.snapshot()
            waited = self.waited.get((kind, seed))
            lines.append(f"  {kind} seed {seed}: {snap.state}, {snap.step}/{snap.steps} steps in {snap.elapsed:.0f} s"
                         + (f", its checks waited {waited:.0f} s" if waited is not None else ""))
        return "\n".join(lines)


TRAININGS = Trainings()
