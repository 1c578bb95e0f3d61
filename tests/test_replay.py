"""A finished run replayed as if it trained (training/replay.py), and a run that outlives its last watcher for
a grace period so that a reload finds it again by its code (training/sharing.py). Real jobs, real workers."""
import time

import numpy as np
import pytest
from speed import hang_s
from test_engine import tiny_train, wait_for

from resnet_viz.config import ModelSpec
from resnet_viz.metrics import NAMES
from resnet_viz.training.engine import Job, WorkerQueue
from resnet_viz.training.replay import Replay, step_times, trimmed
from resnet_viz.training.sharing import CODE_ALPHABET, CODE_LENGTH, Runs, grace_s, run_key

MODELS = [ModelSpec(depth=8, skip=False), ModelSpec(depth=8)]


class Clock:
    """The replay's wall clock, moved by hand: what it shows at any moment is then exact."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Watcher:  # a session's job slot, to the registry
    job = None


@pytest.fixture(scope="module")
def finished_run():
    """One small real run, trained to the end (8 steps, evaluated after steps 3 and 6 and at the end)."""
    job = Job(MODELS, tiny_train(steps=8, eval_every=3), queue=WorkerQueue(1)).start()
    snap = wait_for(job, lambda s: s.finished, 60)
    assert snap.state == "done" and snap.step == 8
    yield job
    job.stop()
    job.join(hang_s(10))


def test_a_replay_unfolds_at_the_pace_the_run_trained_then_ends_as_the_run(finished_run):
    final = finished_run.snapshot()
    ends = step_times(final)
    assert ends.shape == (8,) and np.all(np.diff(ends) > 0)
    assert ends[-1] == pytest.approx(final.elapsed), "the replay lasts as long as the run trained"
    clock = Clock()
    replay = Replay(finished_run, clock=clock)
    snap = replay.snapshot()
    assert (snap.state, snap.step, snap.steps, snap.replay, snap.weights_at) == ("running", 0, 8, 1.0, 8)
    assert not snap.finished and snap.models[0].train_loss.size == 0
    seen = []
    for k in range(8):
        clock.now = 100.0 + ends[k] - 1e-6  # just before step k+1 ends: k steps shown
        seen.append(replay.snapshot().step)
        clock.now = 100.0 + ends[k]
        snap = replay.snapshot()
        assert snap.step == k + 1 and snap.elapsed == pytest.approx(ends[k])
        for view, whole in zip(snap.models, final.models, strict=True):
            assert view.train_loss.shape == (k + 1,) and view.grad_norm.shape[0] == k + 1
            assert np.array_equal(view.train_loss, whole.train_loss[:k + 1])
            assert np.all(view.eval_step <= k + 1), "no evaluation from after the step shown"
            assert view.test_acc.size == view.eval_step.size == np.sum(whole.eval_step <= k + 1)
    assert seen == list(range(8))
    assert snap.state == "done" and snap.finished, "the end of the replay is the end of the run"
    for view, whole in zip(snap.models, final.models, strict=True):
        for name in NAMES:
            assert np.array_equal(getattr(view, name), getattr(whole, name), equal_nan=True), name
    clock.now += 1000
    assert replay.snapshot().step == 8


def test_speed_pause_step_skip_and_stop_move_the_replay_clock(finished_run):
    ends = step_times(finished_run.snapshot())
    clock = Clock()
    replay = Replay(finished_run, speed=2.0, clock=clock)
    clock.now += ends[3] / 2  # at 2x, four steps in half their time
    assert replay.snapshot().step == 4
    replay.set_speed(4.0)  # a new speed goes on from where the replay stands
    clock.now += (ends[5] - ends[3]) / 4
    assert replay.snapshot().step == 6 and replay.speed == 4.0
    replay.pause()
    clock.now += 1000
    snap = replay.snapshot()
    assert (snap.state, snap.step, snap.pause_requested) == ("paused", 6, True)
    replay.step(1)
    assert replay.snapshot().step == 7 and replay.snapshot().state == "paused"
    replay.resume()
    assert replay.snapshot().state == "running" and replay.snapshot().step == 7
    replay.stop()
    clock.now += 1000
    snap = replay.snapshot()
    assert (snap.state, snap.step, snap.finished) == ("stopped", 7, True)
    assert snap.models[0].train_loss.size == 7
    replay.skip_to_end()
    assert replay.snapshot().state == "done" and replay.snapshot().step == 8
    assert replay.join(0) and replay.queue_position() == 0


def test_a_replay_follows_the_wall_clock_and_reads_as_its_run(finished_run):
    """With the real clock: the step rises by itself at 4x; the pages read the run's nets and settings."""
    replay = Replay(finished_run, speed=4.0)
    assert replay.uid != finished_run.uid and replay.nets is finished_run.nets
    assert replay.models == finished_run.models and replay.train == finished_run.train
    assert len(replay.info) == 2 and replay.dataset == finished_run.dataset
    deadline = time.monotonic() + hang_s(10) + finished_run.snapshot().elapsed / 4
    while replay.snapshot().state != "done":
        assert time.monotonic() < deadline, replay.snapshot()
        time.sleep(0.01)
    assert replay.snapshot().step == 8


def test_a_trimmed_view_forgets_a_divergence_still_to_come(finished_run):
    view = finished_run.snapshot().models[0]
    later = type(view)(**{**view.__dict__, "diverged_step": 5})
    assert not trimmed(later, 4).diverged and trimmed(later, 6).diverged_step == 5


# ---- the grace period and the run's code --------------------------------------------------------------

def test_a_run_whose_last_watcher_left_trains_on_for_its_grace_and_a_rejoin_keeps_it(jobs):
    runs, queue = Runs(), WorkerQueue(1)
    train = tiny_train(steps=100_000, eval_every=100_000)
    key = run_key(MODELS, train, "mnist-5k")
    owner = Watcher()
    job, _ = runs.find_or_start(key, lambda: Job(MODELS, train, queue=queue).start(), owner)
    jobs.append(job)
    wait_for(job, lambda s: s.step >= 1, 60)
    code = runs.run_code(job)
    assert len(code) == CODE_LENGTH and set(code) <= set(CODE_ALPHABET) and runs.run_code(job) == code
    runs.leave(job, owner, grace=3.0)  # the tab reloads
    assert runs.leaving(job) and not job.snapshot().finished, "within its grace the run goes on"
    assert runs.find(key) is job, "and can still be joined"
    back = Watcher()
    assert runs.run_by_code(f" {code.lower()} ") is job
    runs.join(job, back)  # the reloaded page comes back with the code
    assert not runs.leaving(job)
    time.sleep(3.5)
    step = job.snapshot().step
    wait_for(job, lambda s: s.step > step, 60)
    assert job.snapshot().state == "running", "a watcher who came back in time keeps the run"
    runs.leave(job, back, grace=0.5)  # now the tab is closed for good
    snap = wait_for(job, lambda s: s.finished, 60)
    assert snap.state == "stopped" and not runs.leaving(job)
    assert runs.find(key) is None, "a run stopped half-way is nobody's to join"
    assert runs.run_by_code(code) is job, "its code still finds it while the server has it"


def test_an_explicit_leave_stops_at_once_and_a_finished_run_needs_no_grace(jobs, finished_run):
    runs, queue = Runs(), WorkerQueue(1)
    job = Job(MODELS, tiny_train(steps=100_000, eval_every=100_000), queue=queue).start()
    jobs.append(job)
    who = Watcher()
    runs.join(job, who)
    runs.leave(job, who)  # Leave, or a new run replacing this one: no grace
    assert wait_for(job, lambda s: s.finished, 60).state == "stopped"
    runs.join(finished_run, who)
    runs.leave(finished_run, who, grace=100)
    assert not runs.leaving(finished_run) and finished_run.snapshot().state == "done"


def test_the_grace_is_a_setting(monkeypatch):
    monkeypatch.delenv("RESNET_LAB_GRACE_S", raising=False)
    assert grace_s() == 60
    monkeypatch.setenv("RESNET_LAB_GRACE_S", "2.5")
    assert grace_s() == 2.5
    monkeypatch.setenv("RESNET_LAB_GRACE_S", "soon")
    assert grace_s() == 60
