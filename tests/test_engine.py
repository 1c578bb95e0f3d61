import gc
import os
import signal
import time

import numpy as np
import pytest
import torch
from speed import hang_s

from resnet_viz.config import ModelSpec, TrainSpec
from resnet_viz.training.engine import (
    Job,
    Snapshot,
    WorkerQueue,
    diverged_message,
    run_threads,
    split,
    threads_per_worker,
)
from resnet_viz.training.trainer import Control
from resnet_viz.training.trainer import lr_at as _lr_at

DEPTH = 8
TINY_MODEL = ModelSpec(depth=DEPTH)


def tiny_train(**kw) -> TrainSpec:
    return TrainSpec(**{**dict(steps=6, batch_size=16, eval_size=50, eval_every=3), **kw})


def wait_for(job: Job, pred, timeout: float = 10.0) -> Snapshot:
    deadline = time.monotonic() + hang_s(timeout)
    while True:
        snap = job.snapshot()
        if pred(snap):
            return snap
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting; last state={snap.state} step={snap.step} "
                        f"queue_position={snap.queue_position} error={snap.error}")
        time.sleep(0.01)


def wait_until_blocked(job: Job, timeout: float = 10.0) -> Snapshot:
    """Wait until the worker sits at a step boundary: its clock stops while it is paused, so two
    snapshots a little apart show the same elapsed time."""
    deadline = time.monotonic() + hang_s(timeout)
    prev = job.snapshot()
    while True:
        time.sleep(0.05)
        snap = job.snapshot()
        if snap.elapsed == prev.elapsed and snap.step == prev.step:
            return snap
        if time.monotonic() > deadline:
            pytest.fail(f"worker never blocked; state={snap.state} step={snap.step}")
        prev = snap


def long_job(queue: WorkerQueue, name: str = "res-8", heartbeat_timeout: float | None = None) -> Job:
    return Job([ModelSpec(depth=DEPTH, name=name)], tiny_train(steps=100_000, eval_every=100_000),
               queue=queue, heartbeat_timeout=heartbeat_timeout)


# ---- blocking runs ----------------------------------------------------------------------------------

def test_run_blocking_records_every_step():
    steps = 7
    models = [ModelSpec(depth=DEPTH, skip=False), ModelSpec(depth=DEPTH)]
    job = Job(models, tiny_train(steps=steps, eval_every=3), queue=WorkerQueue(1))
    snap = job.run_blocking()
    assert snap.state == "done" and snap.error is None
    assert snap.step == snap.steps == steps
    assert snap.queue_position == 0 and snap.finished and not snap.active
    assert [m.name for m in snap.models] == ["plain-8", "res-8"]
    n_blocks = 3 * ((DEPTH - 2) // 6)
    for m in snap.models:
        assert m.diverged_step == -1 and not m.diverged
        np.testing.assert_array_equal(m.step, np.arange(1, steps + 1))
        assert m.train_loss.shape == (steps,) and np.isfinite(m.train_loss).all()
        assert ((m.train_acc >= 0) & (m.train_acc <= 1)).all()
        assert m.grad_norm.shape == (steps, DEPTH)
        assert np.isfinite(m.grad_norm).all() and (m.grad_norm > 0).all()
        assert len(m.layer_names) == DEPTH and len(m.block_names) == n_blocks
        assert m.act_mean.shape == (steps, n_blocks) and m.act_std.shape == (steps, n_blocks)
        assert np.isfinite(m.act_mean).all() and np.isfinite(m.act_std).all()
        assert (m.act_mean > 0).all() and (m.act_std > 0).all()  # block outputs are post-ReLU, not all zero
        assert (m.seconds > 0).all() and m.steps_per_second() > 0
        assert np.isfinite(m.final_train_loss())
        # test accuracy at every eval_every steps and at the end
        np.testing.assert_array_equal(m.eval_step, [3, 6, 7])
        assert m.test_acc.shape == (3,) and ((m.test_acc >= 0) & (m.test_acc <= 1)).all()
        assert np.isfinite(m.test_loss).all() and (m.test_loss > 0).all()
        assert m.params > 0 and m.flops > 0


def test_on_step_called_after_every_step_and_can_stop():
    seen = []
    job = Job([ModelSpec(depth=DEPTH, skip=False), TINY_MODEL], tiny_train(steps=10), queue=WorkerQueue(1))

    def on_step(step, losses):  # on_step(step, losses), one loss per model
        seen.append((step, list(losses)))
        if step == 3:
            job.stop()

    snap = job.run_blocking(on_step)
    assert snap.state == "stopped" and snap.error is None and snap.step == 3
    assert [s for s, _ in seen] == [1, 2, 3]
    for step, losses in seen:
        assert losses == [float(m.train_loss[step - 1]) for m in snap.models]
    assert len(snap.models[0].train_loss) == 3


def test_training_reduces_loss():
    job = Job([TINY_MODEL], tiny_train(steps=40, lr=0.1, eval_every=40, eval_size=200), queue=WorkerQueue(1))
    m = job.run_blocking().models[0]
    assert m.train_loss[-10:].mean() < m.train_loss[:3].mean() - 0.3
    assert m.test_acc[-1] > 0.3  # chance is 0.1


def test_same_seed_gives_identical_losses():
    runs = [Job([TINY_MODEL], tiny_train(seed=5), queue=WorkerQueue(1)).run_blocking() for _ in range(2)]
    a, b = (r.models[0] for r in runs)
    np.testing.assert_array_equal(a.train_loss, b.train_loss)
    np.testing.assert_array_equal(a.grad_norm, b.grad_norm)
    np.testing.assert_array_equal(a.test_acc, b.test_acc)
    other = Job([TINY_MODEL], tiny_train(seed=6), queue=WorkerQueue(1)).run_blocking().models[0]
    assert not np.array_equal(a.train_loss, other.train_loss)


def test_same_architecture_in_one_job_starts_and_trains_identically():
    models = [ModelSpec(depth=DEPTH, name="x"), ModelSpec(depth=DEPTH, name="y")]
    x, y = Job(models, tiny_train(), queue=WorkerQueue(1)).run_blocking().models
    np.testing.assert_array_equal(x.train_loss, y.train_loss)


def test_plain_and_residual_same_seed_both_run_and_differ():
    models = [ModelSpec(depth=DEPTH, skip=False), ModelSpec(depth=DEPTH, skip=True)]
    snap = Job(models, tiny_train(), queue=WorkerQueue(1)).run_blocking()
    assert snap.state == "done"
    plain, res = snap.models
    assert plain.params == res.params
    for m in (plain, res):
        assert len(m.train_loss) == 6 and np.isfinite(m.train_loss).all()
    assert not np.array_equal(plain.train_loss, res.train_loss)  # the skip path changes the computation


def test_adam_and_warmup_run():
    spec = tiny_train(optimizer="adam", lr=0.001, warmup_steps=3)
    snap = Job([TINY_MODEL], spec, queue=WorkerQueue(1)).run_blocking()
    assert snap.state == "done" and np.isfinite(snap.models[0].train_loss).all()


def test_lr_warmup_schedule():
    spec = TrainSpec(lr=1.0, steps=20, warmup_steps=10)
    assert _lr_at(0, spec) == pytest.approx(0.1)
    assert _lr_at(5, spec) == pytest.approx(0.55)
    assert _lr_at(10, spec) == pytest.approx(1.0)
    assert _lr_at(19, spec) == pytest.approx(1.0)
    assert _lr_at(0, TrainSpec(lr=0.3)) == pytest.approx(0.3)


def test_lr_decay_gamma_at_half_and_three_quarters():
    spec = TrainSpec(lr=1.0, steps=100, lr_decay=0.1)
    assert [_lr_at(s, spec) for s in (0, 49, 50, 74, 75, 99)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    assert _lr_at(99, TrainSpec(lr=0.5, steps=100)) == 0.5  # gamma 1: constant


def test_divergent_model_is_marked_and_others_go_on():
    # A residual net without batch norm under He init doubles its signal variance every block: at depth 56
    # the first loss is in the hundreds and the first update sends it to NaN, even at a modest lr.
    blowup = ModelSpec(depth=56, batch_norm=False, init="he")
    models = [blowup, TINY_MODEL]
    snap = Job(models, tiny_train(steps=6, lr=0.1, eval_every=3), queue=WorkerQueue(1)).run_blocking()
    assert snap.state == "done" and snap.step == 6
    bad, good = snap.models
    assert bad.diverged and bad.diverged_step >= 1
    assert not np.isfinite(bad.train_loss[bad.diverged_step - 1])
    assert np.isfinite(bad.train_loss[:bad.diverged_step - 1]).all()
    assert np.isnan(bad.train_loss[bad.diverged_step:]).all()  # no more steps trained after divergence
    assert all(s < bad.diverged_step for s in bad.eval_step)  # nor evaluated
    msg = diverged_message(bad)
    assert bad.name in msg and str(bad.diverged_step) in msg
    assert not good.diverged and good.diverged_step == -1 and diverged_message(good) == ""
    assert np.isfinite(good.train_loss).all() and len(good.train_loss) == 6
    np.testing.assert_array_equal(good.eval_step, [3, 6])


def test_snapshots_are_copies():
    job = Job([TINY_MODEL], tiny_train(), queue=WorkerQueue(1))
    job.run_blocking()
    s1, s2 = job.snapshot(), job.snapshot()
    a, b = s1.models[0], s2.models[0]
    for field in ("step", "train_loss", "train_acc", "seconds", "grad_norm", "act_mean", "act_std",
                  "eval_step", "test_loss", "test_acc"):
        assert not np.shares_memory(getattr(a, field), getattr(b, field)), field
    before = b.train_loss.copy()
    a.train_loss[:] = 123.0
    a.grad_norm[:] = -1.0
    a.layer_names.append("bogus")
    s3 = job.snapshot().models[0]
    np.testing.assert_array_equal(s3.train_loss, before)
    assert (s3.grad_norm > 0).all()
    assert "bogus" not in s3.layer_names


# ---- background runs --------------------------------------------------------------------------------

def test_background_job_stops_on_request(jobs):
    job = long_job(WorkerQueue(1))
    jobs.append(job.start())
    wait_for(job, lambda s: s.state == "running" and s.step >= 2)
    job.stop()
    assert job.join(hang_s(10)) is True
    snap = job.snapshot()
    assert snap.state == "stopped" and snap.finished
    assert 2 <= snap.step < snap.steps
    assert len(snap.models[0].train_loss) == snap.step and np.isfinite(snap.models[0].train_loss).all()
    assert snap.elapsed > 0


def test_a_job_nobody_watches_stops_itself_and_a_watched_one_goes_on(jobs):
    """The heartbeat: a closed tab whose session release never came stops after heartbeat_timeout, running or
    still in the queue; a job whose viewer keeps calling touch() trains on."""
    queue = WorkerQueue(1)
    watched, forgotten = long_job(queue, heartbeat_timeout=1.0), long_job(queue, heartbeat_timeout=1.0)
    jobs.extend([watched.start(), forgotten.start()])
    wait_for(forgotten, lambda s: s.queue_position == 1)
    # Watched all along, until the forgotten one has left and the watched one has trained (its worker may take
    # many seconds to start on a busy machine: a hang guard, not a budget).
    deadline = time.monotonic() + hang_s(60)
    while not (forgotten.snapshot().finished and watched.snapshot().step >= 1) and time.monotonic() < deadline:
        watched.touch()
        time.sleep(0.1)
    assert forgotten.join(hang_s(5)), "a queued job nobody watches leaves the queue"
    assert forgotten.snapshot().state == "stopped" and forgotten.snapshot().step == 0
    snap = watched.snapshot()
    assert snap.state == "running" and snap.step >= 1, "a watched job trains on"
    stopped_at = time.monotonic()
    assert watched.join(hang_s(10)), "once nobody watches, the running job stops too"
    assert watched.snapshot().state == "stopped"
    assert time.monotonic() - stopped_at < hang_s(5)  # within seconds of the timeout


def shared_memory_maps() -> int:
    """Shared-memory mappings of this process (torch's shared tensors live in /dev/shm files or memfds)."""
    with open("/proc/self/maps") as maps:
        return sum(1 for line in maps if "/dev/shm/" in line or "memfd:" in line)


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="Linux only")
def test_a_stopped_job_frees_its_shared_memory_when_its_session_lets_go():
    """A closed tab's job: stopped, then dropped with the session, its shared weights and records are unmapped."""
    gc.collect()
    before = shared_memory_maps()
    job = long_job(WorkerQueue(1)).start()
    try:
        wait_for(job, lambda s: s.state == "running" and s.step >= 1)
        assert shared_memory_maps() > before
    finally:
        job.stop()
        assert job.join(hang_s(10))
    del job
    gc.collect()
    assert shared_memory_maps() == before


def test_start_twice_is_harmless(jobs):
    job = long_job(WorkerQueue(1))
    jobs.append(job.start())
    thread = job._thread
    job.start()
    assert job._thread is thread


def test_background_job_runs_to_done(jobs):
    job = Job([TINY_MODEL], tiny_train(steps=5), queue=WorkerQueue(1))
    jobs.append(job.start())
    assert job.join(hang_s(20))
    snap = job.snapshot()
    assert snap.state == "done" and snap.step == 5


def test_the_server_holds_the_weights_the_worker_trained(jobs):
    """The worker trains the server's models in shared memory: evaluating them here gives exactly the test
    accuracy the worker recorded, BN statistics included."""
    from resnet_viz.analysis.inference import evaluate
    from resnet_viz.data.arrays import bundled_mnist

    train = tiny_train(steps=12, eval_every=12, eval_size=200)
    job = Job([TINY_MODEL, ModelSpec(depth=DEPTH, skip=False)], train, queue=WorkerQueue(1))
    before = [net.stem[0].weight.detach().clone() for net in job.nets]
    jobs.append(job.start())
    assert job.join(hang_s(30)) and job.snapshot().state == "done"
    d = bundled_mnist()
    for net, view, w0 in zip(job.nets, job.snapshot().models, before):
        assert not np.allclose(net.stem[0].weight.detach().numpy(), w0.numpy())
        acc = evaluate(net, d.test_images[:200], d.test_labels[:200]).accuracy
        assert acc == pytest.approx(float(view.test_acc[-1]), abs=1e-6)


def test_workers_do_not_import_the_parent_script():
    """A worker starts from resnet_viz.training.trainer alone: re-running the app script in it would run the page
    outside Streamlit (and fail on components that need the runtime)."""
    import multiprocessing.spawn
    import sys

    from resnet_viz.training import workers

    assert getattr(sys.modules["__main__"], "__file__", None)  # pytest's own script is __main__ here
    data = multiprocessing.spawn.get_preparation_data(workers.WORKER_NAME)
    assert "init_main_from_path" not in data and "init_main_from_name" not in data
    other = multiprocessing.spawn.get_preparation_data("someone-else")
    assert "init_main_from_path" in other or "init_main_from_name" in other


def test_pause_step_resume(jobs):
    steps = 8
    job = Job([TINY_MODEL], tiny_train(steps=steps), queue=WorkerQueue(1))
    jobs.append(job.start(paused=True))
    wait_for(job, lambda s: s.state == "paused")
    snap = wait_until_blocked(job)
    assert snap.step == 0 and snap.state == "paused"  # started paused: nothing trained

    job.step(2)
    wait_for(job, lambda s: s.step >= 2)
    snap = wait_until_blocked(job)
    time.sleep(0.1)
    snap = job.snapshot()
    assert snap.step == 2 and snap.state == "paused"
    assert len(snap.models[0].train_loss) == 2 and np.isfinite(snap.models[0].train_loss).all()

    job.step(1)
    wait_for(job, lambda s: s.step >= 3)
    assert wait_until_blocked(job).step == 3

    job.resume()
    assert job.join(hang_s(20))
    snap = job.snapshot()
    assert snap.state == "done" and snap.step == steps
    assert np.isfinite(snap.models[0].train_loss).all()


def test_pause_while_running_holds_the_step(jobs):
    job = long_job(WorkerQueue(1))
    jobs.append(job.start())
    wait_for(job, lambda s: s.step >= 2)
    job.pause()
    assert job.snapshot().pause_requested  # the step in flight finishes first, then the state reads paused
    held = wait_for(job, lambda s: s.state == "paused").step
    time.sleep(0.3)
    snap = job.snapshot()
    assert snap.step == held and snap.state == "paused"
    job.resume()
    wait_for(job, lambda s: s.step > held)
    job.stop()
    assert job.join(hang_s(10))
    assert job.snapshot().state == "stopped"


def test_stop_while_paused(jobs):
    job = long_job(WorkerQueue(1))
    jobs.append(job.start(paused=True))
    wait_for(job, lambda s: s.state == "paused")
    job.stop()
    assert job.join(hang_s(10))
    snap = job.snapshot()
    assert snap.state == "stopped" and snap.step == 0


# ---- the worker queue -------------------------------------------------------------------------------

def test_queue_second_job_waits_then_runs(jobs):
    queue = WorkerQueue(1)
    first, second = long_job(queue, "first"), long_job(queue, "second")
    jobs.extend([first, second])
    first.start()
    wait_for(first, lambda s: s.state == "running" and s.step >= 1)
    second.start()
    snap = wait_for(second, lambda s: s.state == "queued" and s.queue_position == 1)
    assert snap.active and not snap.finished
    assert first.snapshot().queue_position == 0
    assert queue.busy() == (1, 1)
    time.sleep(0.2)
    assert second.snapshot().step == 0 and second.snapshot().state == "queued"

    first.stop()
    assert first.join(hang_s(10))
    assert first.snapshot().state == "stopped"
    snap = wait_for(second, lambda s: s.state == "running" and s.step >= 1)
    assert snap.queue_position == 0
    second.stop()
    assert second.join(hang_s(10))
    assert second.snapshot().state == "stopped"
    assert queue.busy() == (0, 0)


def test_queue_is_first_come_first_served(jobs):
    queue = WorkerQueue(1)
    first, second, third = (long_job(queue, n) for n in ("first", "second", "third"))
    jobs.extend([first, second, third])
    first.start()
    wait_for(first, lambda s: s.state == "running")
    second.start()
    wait_for(second, lambda s: s.queue_position == 1)
    third.start()
    wait_for(third, lambda s: s.queue_position == 2)
    first.stop()
    assert first.join(hang_s(10))
    wait_for(second, lambda s: s.state == "running")
    time.sleep(0.3)
    assert third.snapshot().state == "queued" and third.snapshot().queue_position == 1


def test_stopping_a_queued_job_ends_it_without_training(jobs):
    queue = WorkerQueue(1)
    first, waiting = long_job(queue, "first"), long_job(queue, "waiting")
    jobs.extend([first, waiting])
    first.start()
    wait_for(first, lambda s: s.state == "running")
    waiting.start()
    wait_for(waiting, lambda s: s.state == "queued" and s.queue_position == 1)
    waiting.stop()
    assert waiting.join(hang_s(10))
    snap = waiting.snapshot()
    assert snap.state == "stopped" and snap.step == 0 and snap.queue_position == 0
    assert len(snap.models[0].train_loss) == 0
    assert first.snapshot().state == "running"  # the running job is unaffected
    assert queue.busy() == (1, 0)


def test_two_slots_run_two_jobs(jobs):
    queue = WorkerQueue(2)
    a, b = long_job(queue, "a"), long_job(queue, "b")
    jobs.extend([a.start(), b.start()])
    wait_for(a, lambda s: s.state == "running" and s.step >= 1)
    wait_for(b, lambda s: s.state == "running" and s.step >= 1)
    assert queue.busy() == (2, 0)


def test_job_rejects_bad_model_lists():
    from resnet_viz.i18n import LabError
    with pytest.raises(LabError):
        Job([], tiny_train(), queue=WorkerQueue(1))
    with pytest.raises(LabError):
        Job([TINY_MODEL, TINY_MODEL], tiny_train(), queue=WorkerQueue(1))


# ---- regressions (bugs found and fixed) -------------------------------------------------------------

def test_pause_after_step_then_resume_pauses(jobs):
    job = long_job(WorkerQueue(1))
    jobs.append(job.start(paused=True))
    wait_for(job, lambda s: s.state == "paused")
    wait_until_blocked(job)
    job.step(50)  # "train 50 more steps", then the user changes their mind ...
    job.resume()  # ... and lets it run
    wait_for(job, lambda s: s.step >= 1)
    job.pause()
    asked_at = job.snapshot().step
    held = wait_until_blocked(job, timeout=30).step
    assert held <= asked_at + 1  # at most the step in flight finishes


def test_background_workers_match_in_process_training_while_jobs_are_built():
    """Workers run in their own process: building other Jobs (which seeds torch's RNG here) while two
    workers train cannot change their start weights, and a worker reproduces the in-process result."""
    train = tiny_train(steps=4, seed=11)
    reference = Job([TINY_MODEL], train, queue=WorkerQueue(1)).run_blocking().models[0].train_loss
    queue = WorkerQueue(2, threads=torch.get_num_threads())  # the reference's threads: the very same sums
    jobs = [Job([TINY_MODEL], train, queue=queue).start() for _ in range(2)]
    for _ in range(5):
        Job([ModelSpec(depth=14)], train, queue=WorkerQueue(1))
    for job in jobs:
        assert job.join(hang_s(60))
        snap = job.snapshot()
        assert snap.state == "done", snap.error
        np.testing.assert_array_equal(snap.models[0].train_loss, reference)


def test_a_queue_gives_its_workers_their_threads_and_cpu_priority(jobs, monkeypatch):
    """The science checks' background runs (tests/trainings.py): a nice-19 queue's worker trains at nice 19;
    by default each of a queue's slots gets its share of the cores, and a run whose page is drawn on this
    machine one thread fewer (engine.run_threads); RESNET_LAB_THREADS overrides both."""
    monkeypatch.delenv("RESNET_LAB_THREADS", raising=False)
    assert WorkerQueue(2).threads == max(1, (os.cpu_count() or 1) // 2)
    assert WorkerQueue(1, threads=3).threads == 3
    full = threads_per_worker()
    assert run_threads(viewer_here=False) == full
    assert run_threads(viewer_here=True) == max(1, full - 1)
    monkeypatch.setenv("RESNET_LAB_THREADS", "3")
    assert threads_per_worker() == run_threads(viewer_here=True) == run_threads(viewer_here=False) == 3
    job = long_job(WorkerQueue(1, threads=2, nice=19), "niced")
    assert job.threads == 2
    jobs.append(job.start())
    # Only the priority is checked: a nice-19 worker may wait long for its first step on a busy machine.
    deadline = time.monotonic() + hang_s(10)
    while not job._workers or os.getpriority(os.PRIO_PROCESS, job._workers[0].pid) != 19:
        assert time.monotonic() < deadline, f"the worker is not at nice 19: {job.snapshot()}"
        time.sleep(0.05)
    assert Job([ModelSpec(depth=DEPTH)], tiny_train(steps=1), queue=WorkerQueue(1, threads=2), threads=1).threads == 1


def test_every_recorded_series_reads_from_the_snapshot_shaped_as_declared():
    """metrics.SERIES is the one list of what a run records: each entry is in the view, with its shape."""
    from resnet_viz.metrics import SERIES
    snap = Job([ModelSpec(depth=8, skip=False), ModelSpec(depth=8)], tiny_train(steps=5, eval_every=2)).run_blocking()
    for v in snap.models:
        sizes = {"step": (5,), "layer": (5, len(v.layer_names)), "block": (5, len(v.block_names)), "eval": (3,)}
        for s in SERIES:
            values = getattr(v, s.name)
            assert values.shape == sizes[s.per], (s.name, values.shape)
            assert np.isfinite(values).all() or s.name in ("ratio", "alpha", "beta"), s.name  # NaN: plain blocks
        assert np.isnan(v.ratio).all() == (not v.spec.skip)
    with pytest.raises(AttributeError):
        snap.models[0].no_such_series


# ---- one job over several single-thread workers -----------------------------------------------------

SPLIT_MODELS = [ModelSpec(depth=DEPTH, skip=False), ModelSpec(depth=14), ModelSpec(depth=DEPTH)]


def test_split_puts_the_costliest_model_first_and_balances_the_rest():
    assert split([5, 20, 7, 9], 2) == [[1], [0, 2, 3]]  # 20 | 9 + 7 + 5, each group in run order
    groups = split([5, 20, 7, 9, 30], 2)
    assert sorted(i for g in groups for i in g) == [0, 1, 2, 3, 4] and len(groups) == 2
    assert split([3, 3], 4) == [[0], [1]]  # never more workers than models
    assert split([3, 3, 3], 1) == [[0, 1, 2]]


def test_a_job_with_two_cores_trains_its_models_in_two_workers_as_one_worker_would(jobs):
    """Each model trains alone with one thread either way: its records are the same, bit for bit."""
    train = tiny_train(steps=5, eval_every=2, seed=3)
    one = Job(SPLIT_MODELS, train, queue=WorkerQueue(1, threads=1))
    two = Job(SPLIT_MODELS, train, queue=WorkerQueue(1, threads=2))
    assert len(one.parts) == 1 and len(two.parts) == 2
    for job in (one, two):
        jobs.append(job.start())
        assert job.join(hang_s(60))
    assert len({w.pid for w in two._workers}) == 2
    a, b = one.snapshot(), two.snapshot()
    assert a.state == b.state == "done" and a.step == b.step == 5
    for x, y in zip(a.models, b.models, strict=True):
        for name, values in x.series.items():
            if name != "seconds":
                np.testing.assert_array_equal(values, y.series[name], err_msg=name)


def test_a_split_job_pauses_steps_and_resumes_with_every_model_at_one_step(jobs):
    train = tiny_train(steps=100_000, eval_every=100_000)
    job = Job(SPLIT_MODELS, train, queue=WorkerQueue(1, threads=2))
    assert len(job.parts) == 2
    jobs.append(job.start())
    wait_for(job, lambda s: s.step >= 3, timeout=30)
    job.pause()
    held = wait_until_blocked(job, timeout=30)
    held = wait_for(job, lambda s: s.state == "paused")
    assert {int(c[Control.STEP]) for c in job._controls} == {held.step}  # the one behind caught up
    assert all(len(m.train_loss) == held.step and np.isfinite(m.train_loss).all() for m in held.models)
    job.step(2)
    wait_for(job, lambda s: s.step >= held.step + 2, timeout=30)
    snap = wait_until_blocked(job)
    assert snap.step == held.step + 2 and snap.state == "paused"
    assert {int(c[Control.STEP]) for c in job._controls} == {snap.step}
    job.resume()
    wait_for(job, lambda s: s.step >= snap.step + 2 and s.state == "running", timeout=30)
    job.stop()
    assert job.join(hang_s(20))
    assert job.snapshot().state == "stopped"
    assert not any(w.process.is_alive() for w in job._workers)


def test_a_killed_worker_fails_the_run_stops_the_others_and_keeps_what_was_recorded(jobs):
    job = Job(SPLIT_MODELS, tiny_train(steps=100_000, eval_every=100_000), queue=WorkerQueue(1, threads=2))
    jobs.append(job.start())
    wait_for(job, lambda s: s.step >= 2, timeout=30)
    os.kill(job._workers[0].pid, signal.SIGKILL)  # out of memory, or a crash in C
    assert job.join(hang_s(30))
    snap = job.snapshot()
    assert snap.state == "failed" and "-9" in snap.error
    assert not any(w.process.is_alive() for w in job._workers)
    assert snap.step >= 2 and all(np.isfinite(m.train_loss).all() for m in snap.models)


SERVER_KILLED = """
import time
from resnet_viz.config import ModelSpec, TrainSpec
from resnet_viz.training.engine import Job, WorkerQueue
job = Job([ModelSpec(depth=8, skip=False), ModelSpec(depth=8)], TrainSpec(steps=100_000, eval_every=100_000,
          batch_size=16, eval_size=50), queue=WorkerQueue(1, threads=2)).start()
while job.snapshot().step < 3:
    time.sleep(0.1)
print(" ".join(str(w.pid) for w in job._workers), flush=True)
time.sleep(600)
"""


def test_a_server_killed_outright_leaves_no_worker_training():
    """A process playing the server starts a run, then is killed (SIGKILL: no atexit, no cleanup): its fork
    server ends, and the workers end with it (trainer.die_with_server). (On Ray: test_ray.py.)"""
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    server = subprocess.Popen([sys.executable, "-c", SERVER_KILLED], cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in server.stdout.readline().split()]
        assert pids, "the run never started"
    finally:
        server.kill()
        server.wait(10)

    def alive():  # not ended, nor a zombie its parent has not reaped (state Z, the field after the name)
        found = []
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] not in "ZX":
                        found.append(pid)
            except OSError:
                pass
        return found
    deadline = time.monotonic() + hang_s(30)
    while alive():
        if time.monotonic() > deadline:
            for pid in alive():
                os.kill(pid, signal.SIGKILL)
            pytest.fail("a killed server's workers trained on")
        time.sleep(0.1)


def test_a_job_shares_its_cores_among_single_thread_workers_when_the_browser_is_here(monkeypatch):
    """With the page's browser on this machine, no worker runs a thread team (it would wait at every barrier
    for the thread that lost its core); elsewhere a lone model gets the job's cores as threads."""
    monkeypatch.delenv("RESNET_LAB_THREADS", raising=False)
    queue = WorkerQueue(1, threads=2)
    here = Job(SPLIT_MODELS, tiny_train(), queue=queue, viewer_here=True)
    assert (len(here.parts), here.threads) == (2, 1)
    assert (len(Job(SPLIT_MODELS, tiny_train(), queue=queue).parts), here.threads) == (2, 1)
    assert Job([TINY_MODEL], tiny_train(), queue=queue, viewer_here=True).threads == 1
    assert Job([TINY_MODEL], tiny_train(), queue=queue).threads == 2
    monkeypatch.setenv("RESNET_LAB_THREADS", "2")  # set by the admin: used as it is
    assert Job([TINY_MODEL], tiny_train(), queue=queue, viewer_here=True).threads == 2


def test_a_job_on_one_core_or_with_pretraining_keeps_one_worker():
    assert len(Job(SPLIT_MODELS, tiny_train(), queue=WorkerQueue(1, threads=1)).parts) == 1
    transfer = [ModelSpec(depth=DEPTH, transfer="finetune"), ModelSpec(depth=DEPTH, skip=False)]
    job = Job(transfer, tiny_train(pretrain_steps=2), queue=WorkerQueue(1, threads=2))
    assert job.parts == [[0, 1]]


def test_a_local_browser_redraws_the_charts_once_per_sixteen_steps_of_the_runs_pace():
    """ui.session.chart_pace: 2 s until the pace is known (the first steps are slow), then CHART_STEPS steps'
    training time in whole seconds, never under 2 s: the page takes the same share of a slow machine."""
    from resnet_viz.ui.session import CHART_STEPS, CHART_STEPS_KNOWN, chart_pace
    job = Job([TINY_MODEL], tiny_train(steps=CHART_STEPS_KNOWN), queue=WorkerQueue(1))
    control = job._controls[0]
    for step, elapsed, pace in ((CHART_STEPS_KNOWN - 1, 100.0, 2.0), (CHART_STEPS_KNOWN, 0.5, 2.0),
                                (CHART_STEPS_KNOWN, 5.0, round(CHART_STEPS * 0.5)),
                                (CHART_STEPS_KNOWN, 2.6, round(CHART_STEPS * 0.26))):
        control[Control.STEP], control.elapsed[0] = step, elapsed
        assert chart_pace(job) == pace, (step, elapsed)


def test_the_tabs_on_the_servers_machine_share_one_chart_pace_and_fewer_status_polls(monkeypatch):
    """ui.session.chart_interval: a run's tabs whose browser is on the server's machine redraw its charts
    once per chart_pace all together (each every N paces for N such tabs: 24 tabs of one browser each at a
    lone tab's pace took the cores from the run they showed); a browser elsewhere every second, or every N/2 s
    for N viewers (live_interval). status_interval: every second, every N/5 s for N viewers, and for a tab
    on the server's machine every N/2 s for N such tabs."""
    from resnet_viz.training.sharing import Runs
    from resnet_viz.ui import session
    from resnet_viz.ui.session import CHART_STEPS_KNOWN
    runs = Runs()
    monkeypatch.setattr(session, "RUNS", runs)

    def running_job() -> Job:  # a run whose pace is known: CHART_STEPS_KNOWN steps in 5 s
        job = Job([TINY_MODEL], tiny_train(steps=CHART_STEPS_KNOWN), queue=WorkerQueue(1))
        job._state = "running"
        job._controls[0][Control.STEP], job._controls[0].elapsed[0] = CHART_STEPS_KNOWN, 5.0
        return job

    job = running_job()
    pace = session.chart_pace(job)
    here, away = [session.JobHolder(here=True) for _ in range(6)], [session.JobHolder() for _ in range(2)]
    for who in here + away:
        runs.join(job, who)
    assert (runs.viewers(job), runs.viewers(job, here=True)) == (8, 6)
    monkeypatch.setattr(session, "viewer_here", lambda: True)
    assert session.chart_interval(job) == 6 * pace
    assert session.status_interval(job) == 6 / session.LOCAL_STATUS_REFRESHES_PER_SECOND
    monkeypatch.setattr(session, "viewer_here", lambda: False)
    assert session.chart_interval(job) == 8 / session.LIVE_REFRESHES_PER_SECOND
    assert session.status_interval(job) == 8 / session.STATUS_REFRESHES_PER_SECOND
    private = running_job()  # nobody registered: its owner alone
    monkeypatch.setattr(session, "viewer_here", lambda: True)
    assert session.chart_interval(private) == pace and session.status_interval(private) == 1.0
