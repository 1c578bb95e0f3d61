"""A whole class on one server: identical runs are trained once and shared, a run is followed by its code,
and a run too big for the server's memory is refused before it starts. Real jobs, real workers."""
import numpy as np
import pytest
from test_engine import tiny_train, wait_for

from resnet_viz.config import ModelSpec, TrainSpec
from resnet_viz.i18n import LabError
from resnet_viz.metrics import NAMES
from resnet_viz.training import memory
from resnet_viz.training.engine import Job, WorkerQueue
from resnet_viz.training.sharing import (
    CODE_ALPHABET,
    CODE_LENGTH,
    Runs,
    normal_code,
    run_key,
)

MODELS = [ModelSpec(depth=8, skip=False), ModelSpec(depth=8)]


class Watcher:  # what a session's job slot is to the registry: an identity that holds a job
    def __init__(self):
        self.job = None


def finished(job: Job):
    return wait_for(job, lambda s: s.finished, 60)


def test_two_runs_with_the_same_settings_record_exactly_the_same(jobs):
    """What sharing rests on: in the app's worker processes, the same settings give the same records, every
    series, bit for bit (so a student who joins a run sees exactly what their own copy would have shown)."""
    queue = WorkerQueue(1)
    train = tiny_train(steps=8, eval_every=4)
    a, b = (Job(MODELS, train, queue=queue).start() for _ in range(2))
    jobs.extend([a, b])
    sa, sb = finished(a), finished(b)
    assert sa.state == sb.state == "done"
    for va, vb in zip(sa.models, sb.models, strict=True):
        for name in NAMES:
            if name == "seconds":  # wall-clock time per step: the one series that is not the training's
                continue
            assert np.array_equal(getattr(va, name), getattr(vb, name), equal_nan=True), (va.name, name)
    other = Job(MODELS, tiny_train(steps=8, eval_every=4, seed=1), queue=queue).start()
    jobs.append(other)
    assert not np.array_equal(finished(other).models[0].train_loss, sa.models[0].train_loss)


def test_a_run_key_names_every_setting():
    train = TrainSpec(steps=30)
    key = run_key(MODELS, train, "mnist-5k")
    assert key == run_key(list(MODELS), TrainSpec(steps=30), "mnist-5k")
    assert key != run_key(MODELS, TrainSpec(steps=30, seed=1), "mnist-5k")
    assert key != run_key(MODELS, train, "fashion-mnist")
    assert key != run_key(MODELS[::-1], train, "mnist-5k")
    assert key != run_key([ModelSpec(depth=8, skip=False), ModelSpec(depth=8, beta=0.5)], train, "mnist-5k")


def test_a_second_session_joins_the_run_and_it_stops_only_when_its_last_watcher_leaves(jobs):
    runs, queue = Runs(cache_size=4), WorkerQueue(1)
    train = tiny_train(steps=100_000, eval_every=100_000)
    key = run_key(MODELS, train, "mnist-5k")
    first, second, third = Watcher(), Watcher(), Watcher()
    started = []

    def start():
        started.append(Job(MODELS, train, queue=queue).start())
        jobs.append(started[-1])
        return started[-1]

    job, joined = runs.find_or_start(key, start, first)
    assert not joined and started == [job]
    again, joined = runs.find_or_start(key, start, second)
    assert joined and again is job and len(started) == 1, "the same settings must not start a second run"
    assert runs.watchers(job) == 2 and runs.shared(job)
    wait_for(job, lambda s: s.step >= 2, 60)
    runs.leave(job, first)  # the student who started it closes the tab
    step = job.snapshot().step
    wait_for(job, lambda s: s.step > step + 1, 60)
    assert job.snapshot().state == "running", "the run must go on while someone still watches it"
    assert not runs.shared(job)
    runs.join(job, third)
    runs.leave(job, second)
    assert job.snapshot().state == "running"
    runs.leave(job, third)
    assert finished(job).state == "stopped"
    assert runs.find(key) is None, "a stopped run is nobody's to join"


def test_a_finished_run_is_joined_whole_and_the_cache_keeps_the_most_recent(jobs):
    runs, queue = Runs(cache_size=1), WorkerQueue(1)
    watcher = Watcher()
    trains = [tiny_train(steps=3, eval_every=3, seed=s) for s in (0, 1, 2)]
    keys = [run_key(MODELS, t, "mnist-5k") for t in trains]
    done = []
    for key, train in zip(keys, trains, strict=True):
        job, _ = runs.find_or_start(key, lambda train=train: Job(MODELS, train, queue=queue).start(), watcher)
        jobs.append(job)
        assert finished(job).state == "done"
        runs.leave(job, watcher)  # its student left: a finished run stays for the latecomers
        done.append(job)
    # One finished run is kept beside the newest: the third run's start pushed the first one out.
    assert runs.find(keys[0]) is None
    latecomer = Watcher()
    job, joined = runs.find_or_start(keys[1], lambda: pytest.fail("a finished run must not train again"),
                                     latecomer)
    assert joined and job is done[1] and job.snapshot().step == 3 and job.snapshot().state == "done"


def test_a_paused_run_is_not_offered_to_newcomers(jobs):
    runs, queue = Runs(), WorkerQueue(1)
    train = tiny_train(steps=100_000, eval_every=100_000)
    key = run_key(MODELS, train, "mnist-5k")
    job, _ = runs.find_or_start(key, lambda: Job(MODELS, train, queue=queue).start(), Watcher())
    jobs.append(job)
    job.pause()
    assert runs.find(key) is None, "its watcher is stepping through it: a newcomer gets a run of their own"
    job.resume()
    assert runs.find(key) is job


def test_a_published_code_finds_the_session_until_it_leaves():
    runs, teacher, other = Runs(), Watcher(), Watcher()
    code = runs.publish(teacher)
    assert len(code) == CODE_LENGTH and set(code) <= set(CODE_ALPHABET)
    assert runs.publish(teacher) == code, "one code per session"
    assert runs.publish(other) != code
    assert runs.followed(code) is teacher
    assert runs.followed(f" {code.lower()[:2]} {code.lower()[2:]} ") is teacher, "typed with spaces, lower case"
    assert normal_code(" k7 qm ") == "K7QM"
    runs.unpublish(teacher)
    assert runs.followed(code) is None
    assert runs.followed("") is None and runs.followed("????") is None


# ---- memory ---------------------------------------------------------------------------------------------

HUGE = ModelSpec(depth=110, width=2.0, stem_stride=1)  # 16 GB of resident memory at batch 1024 (measured)


def test_the_estimate_counts_what_a_run_keeps_for_its_backward_pass():
    small = memory.estimate([ModelSpec(depth=20)], TrainSpec(batch_size=64))
    double = memory.estimate([ModelSpec(depth=20)], TrainSpec(batch_size=128))
    assert double.activations_mb == pytest.approx(2 * small.activations_mb, rel=0.05)  # per image (BN keeps per-channel stats)
    assert small.total_mb < 1000
    huge = memory.estimate([HUGE], TrainSpec(batch_size=1024))
    # The measured peak was 16 GB: the estimate must be of that size, not a tenth or ten times of it.
    assert 12_000 < huge.total_mb < 24_000, huge
    assert huge.largest == HUGE.name
    adam = memory.estimate([ModelSpec(depth=56)], TrainSpec(optimizer="adam"))
    sgd = memory.estimate([ModelSpec(depth=56)], TrainSpec())
    assert adam.weights_mb == pytest.approx(sgd.weights_mb * 4 / 3)  # Adam keeps two moments, momentum one
    # a run split among two workers: two processes, each with its own largest backward pass
    pair = [ModelSpec(depth=56), ModelSpec(depth=20)]
    one, two = memory.estimate(pair, TrainSpec()), memory.estimate(pair, TrainSpec(), [[0], [1]])
    assert two.weights_mb == one.weights_mb and two.activations_mb > one.activations_mb
    assert two.total_mb > one.total_mb + memory.WORKER_BASE_MB


def test_the_default_budget_refuses_the_16_gb_run_on_a_24_gb_machine(monkeypatch):
    monkeypatch.delenv("RESNET_LAB_RUN_MEMORY_MB", raising=False)
    monkeypatch.setattr(memory, "machine_memory_mb", lambda: 24 * 1024)
    assert memory.run_budget_mb(1) == 12 * 1024
    with pytest.raises(LabError) as e:
        memory.check_memory([HUGE], TrainSpec(batch_size=1024), memory.run_budget_mb(1))
    text = e.value.text("en")
    assert "batch size (now 1024)" in text and HUGE.name in text and "12.0 GB" in text, text
    memory.check_memory([HUGE], TrainSpec(batch_size=16), memory.run_budget_mb(1))  # lowered: it fits
    monkeypatch.setenv("RESNET_LAB_RUN_MEMORY_MB", "300")
    assert memory.run_budget_mb() == 300


def test_a_run_over_the_budget_is_refused_before_anything_starts(monkeypatch):
    monkeypatch.setenv("RESNET_LAB_RUN_MEMORY_MB", "100")
    with pytest.raises(LabError, match="more than this server allows one run"):
        Job([ModelSpec(depth=20)], TrainSpec(batch_size=256))
    monkeypatch.setenv("RESNET_LAB_RUN_MEMORY_MB", "100000")
    Job([ModelSpec(depth=20)], TrainSpec(batch_size=256))  # under a larger budget the same run is built
