"""Training jobs on Ray (training/workers.py): a real Ray instance started on 127.0.0.1 by these tests, real
actors training the real models, compared with the same runs in this machine's worker processes."""
import os
import signal
import sys
import time

import numpy as np
import pytest
from speed import hang_s
from test_engine import wait_for

from resnet_viz.config import DEFAULT_PRESET, PRESETS, ModelSpec, TrainSpec, replace
from resnet_viz.i18n import LabError
from resnet_viz.training import workers
from resnet_viz.training.engine import Job, WorkerQueue

MODELS = [ModelSpec(depth=8, skip=False), ModelSpec(depth=14), ModelSpec(depth=8)]


def require_ray():
    """The ray module; skip without it, except under CI, where its absence is a failure."""
    try:
        import ray
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("ray is not installed; CI installs it from tests/requirements.txt")
        pytest.skip("ray is not installed (pip install -r requirements-cluster.txt)")
    return ray


@pytest.mark.browser
def test_the_app_pointed_at_a_local_ray_trains_the_default_preset_to_done_in_chromium():
    """`RESNET_LAB_RAY_ADDRESS=local streamlit run streamlit_app.py`: Train in a real Chromium, the run placed by
    the server's own Ray instance, the page showing Done (the preset's run, 3 steps by a share link). It is
    also `bench --browser`'s measurement (bench.browser_run): the page's status read until Done, and the CPU
    the server, the training workers (Ray's processes, below the server) and the browser used, each some.
    First in the module: the module's own Ray instance (ray_local) is not up yet."""
    require_ray()
    from app_server import CHROMIUM, require_chromium

    from resnet_viz.bench import browser_run
    require_chromium()
    shown = browser_run(0, {workers.RAY_ENV: "local"}, query="steps=3", chromium=CHROMIUM, limit_s=hang_s(300),
                        settled=False)
    assert shown["page_s"] == shown["page_s"] and shown["wall_s"] > 0, shown  # Done read off the page
    assert all(shown["cpu_s"][k] > 0 for k in ("server", "worker", "browser")), shown
    print("the default preset, 3 steps, on a local Ray from the page:", shown)


@pytest.fixture(scope="module")
def ray_local():
    """The address of one Ray instance for the module, started as the app starts it (RESNET_LAB_RAY_ADDRESS=
    local): in a process of its own on this machine's cores, no dashboard. This test process never connects
    to it itself: every run's Ray driver is a process of its own (workers.py), as in the app."""
    require_ray()
    yield workers.local_head()
    workers._stop_head()


def actor_pids(name: str = "RayTrainer") -> list[int]:
    """The processes of this machine's live Ray actors of class `name` (their title: "ray::RayTrainer...")."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if f.read().startswith(f"ray::{name}".encode()):
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


def no_actors_left(timeout: float = 30) -> None:
    deadline = time.monotonic() + hang_s(timeout)
    while actor_pids():
        assert time.monotonic() < deadline, f"Ray actors left training: {actor_pids()}"
        time.sleep(0.2)


def long_train() -> TrainSpec:
    return TrainSpec(steps=100_000, batch_size=16, eval_size=50, eval_every=100_000)


def test_the_default_preset_on_ray_records_what_local_workers_record(ray_local):
    """Same models, settings and seed, one thread per model in both: the same floats, bit for bit, and the
    server's copies of the models end with the same weights. On Ray: one driver process, one actor a part."""
    preset = PRESETS[DEFAULT_PRESET]
    train = replace(preset.train, steps=3, eval_every=2, eval_size=100)
    local = Job(preset.models, train, queue=WorkerQueue(1, threads=2)).start()
    assert local.join(hang_s(120))
    job = Job(preset.models, train, queue=WorkerQueue(1, threads=2), ray=ray_local).start()
    seen = 0
    while not job.join(0.1):
        seen = max(seen, len(actor_pids()))
    a, b = local.snapshot(), job.snapshot()
    assert a.state == b.state == "done" and a.step == b.step == 3, b.error
    assert len(job.parts) == 2 and len(job._workers) == 1 and b.cluster and not a.cluster
    assert seen == 2, "one Ray actor for each of the job's two parts"
    for x, y in zip(a.models, b.models, strict=True):
        for name, values in x.series.items():
            if name != "seconds":
                np.testing.assert_array_equal(values, y.series[name], err_msg=f"{x.name} {name}")
    for mine, theirs in zip(local._flats, job._flats, strict=True):
        assert bool((mine == theirs).all())
    no_actors_left()


def test_a_ray_run_pauses_steps_resumes_the_server_draws_with_its_weights_and_a_killed_actor_fails_it(ray_local, jobs):
    """Pause, Step and Resume reach the actors; the server's copies of the models move as they train (Draw,
    Errors and Gradients read them); then one actor's process is killed, as out of memory or a lost node
    would: the run fails with a message, keeps what it recorded, and its other actor is stopped."""
    from resnet_viz.analysis.inference import probabilities

    job = Job(MODELS, long_train(), queue=WorkerQueue(1, threads=2), ray=ray_local)
    jobs.append(job)  # stopped whatever happens: a failed check must not leave its 100000 steps training
    start = [f.clone() for f in job._flats]
    job.start()
    wait_for(job, lambda s: s.step >= 5, timeout=60)
    deadline = time.monotonic() + hang_s(30)
    while all(bool((f == f0).all()) for f, f0 in zip(job._flats, start, strict=True)):
        assert time.monotonic() < deadline, "the server's weights never moved"
        time.sleep(0.2)
    digit = np.zeros((28, 28), dtype=np.float32)
    digit[4:24, 12:16] = 1.0  # a "1"
    probs = probabilities(job.nets, digit)
    assert len(probs) == len(MODELS) and all(abs(float(np.sum(p)) - 1) < 1e-4 for p in probs)

    job.pause()
    held = wait_for(job, lambda s: s.state == "paused", timeout=60)
    time.sleep(1.0)
    assert job.snapshot().step == held.step  # it holds
    job.step(2)
    wait_for(job, lambda s: s.step == held.step + 2 and s.state == "paused", timeout=60)
    job.resume()
    wait_for(job, lambda s: s.step >= held.step + 4 and len(actor_pids()) == 2, timeout=60)
    os.kill(actor_pids()[0], signal.SIGKILL)
    assert job.join(hang_s(60))
    snap = job.snapshot()
    assert snap.state == "failed" and "Ray" in snap.error, snap.error
    assert snap.step >= held.step + 4 and all(np.isfinite(m.train_loss).all() for m in snap.models)
    no_actors_left()  # the other actor was stopped, not left training


def test_runs_waiting_for_the_cluster_show_their_place_and_runs_nobody_watches_stop(ray_local, jobs, monkeypatch):
    """Ray's scheduler is the queue: runs asking for more CPUs than the cluster has free wait, queued, each
    with its place in this server's line for the cluster, and start by themselves as CPUs free up. A run
    whose viewers have all gone (the tab closed: nobody renews its heartbeat) stops, its actors ended, and so
    does one still waiting in the line. The second is a class's run (training/sharing.py): two sessions
    joined it, a code it publishes leads followers to it, it trains on while one of them watches and stops
    when the last one leaves."""
    monkeypatch.setenv("RESNET_LAB_GRACE_S", "0")  # the last viewer's leaving stops a run at once here
    from test_sharing import Watcher

    from resnet_viz.training.sharing import Runs, run_key
    cores = os.cpu_count() or 1
    train = long_train()

    def run(**kw):  # stopped whatever happens (jobs): a failed check must not leave its run training
        jobs.append(Job(MODELS, train, queue=WorkerQueue(1, threads=cores), ray=ray_local, **kw).start())
        return jobs[-1]

    def watched(pred):  # the first and third runs' viewers are there while the line is checked
        return lambda s: first.touch() or third.touch() or pred(s)

    third = first = run(heartbeat_timeout=3.0)
    # Trained a step: placed is not enough (on a busy machine its actors were still importing torch when the
    # line had been checked, and it stopped at step 0)
    wait_for(first, watched(lambda s: s.state == "running" and s.step >= 1), timeout=60)
    runs, student, other = Runs(cache_size=2), Watcher(), Watcher()
    second, joined = runs.find_or_start(run_key(MODELS, train, "mnist-5k"), run, student)
    again, joined = runs.find_or_start(run_key(MODELS, train, "mnist-5k"), run, other)
    assert joined and again is second and runs.watchers(second) == 2
    third = run(heartbeat_timeout=3.0)
    a = wait_for(second, watched(lambda s: s.state == "queued" and s.queue_position == 1), timeout=30)
    b = wait_for(third, watched(lambda s: s.state == "queued" and s.queue_position == 2), timeout=30)
    assert a.cluster and b.cluster
    # then the first's and the third's viewers leave: nobody touches them any more
    assert first.join(hang_s(60)) and first.snapshot().state == "stopped" and first.snapshot().step > 0
    assert third.join(hang_s(30)) and third.snapshot().state == "stopped" and third.snapshot().step == 0
    wait_for(second, lambda s: s.state == "running" and s.step >= 1, timeout=60)
    # Follow-the-teacher: a code published by the run's session gives a follower this very run, live
    student.job = second
    followed = runs.followed(runs.publish(student)).job
    assert followed is second and followed.snapshot().cluster
    runs.leave(second, student)
    step = second.snapshot().step
    wait_for(second, lambda s: s.step > step + 1, timeout=60)  # the other student still watches it
    runs.leave(second, other)
    assert second.join(hang_s(60)) and second.snapshot().state == "stopped"
    no_actors_left()


def test_a_gpu_run_asks_the_cluster_not_the_server_for_its_gpu(ray_local):
    """On Ray, "cuda" is the cluster's to give: the server (no GPU here) builds the run, one worker, and the
    run's driver says at once that the cluster has no GPU, rather than leaving a run Ray can never place."""
    job = Job(MODELS, replace(long_train(), device="cuda"), queue=WorkerQueue(1, threads=2), ray=ray_local)
    assert len(job.parts) == 1  # a GPU run trains its models in one worker, as on one machine
    job.start()
    assert job.join(hang_s(60))
    snap = job.snapshot()
    assert snap.state == "failed" and "GPU" in snap.error and snap.step == 0, snap.error


def test_without_ray_the_run_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    with pytest.raises(LabError) as missing:
        workers.connect("local")
    assert "requirements-cluster.txt" in missing.value.text("en")
    job = Job(MODELS, long_train(), queue=WorkerQueue(1, threads=2), ray="local").start()
    assert job.join(hang_s(30))
    snap = job.snapshot()
    assert snap.state == "failed" and workers.RAY_ENV in snap.error and snap.step == 0


def test_the_app_reads_its_ray_address_from_the_environment(monkeypatch):
    monkeypatch.delenv(workers.RAY_ENV, raising=False)
    assert workers.ray_address() is None
    assert Job(MODELS, long_train(), queue=WorkerQueue(1)).ray_address is None
    monkeypatch.setenv(workers.RAY_ENV, "ray://head:10001")
    assert Job(MODELS, long_train(), queue=WorkerQueue(1)).ray_address == "ray://head:10001"
    assert Job(MODELS, long_train(), queue=WorkerQueue(1), ray="").ray_address is None  # the CLI's local run


def test_the_sweep_on_ray_gives_the_rows_of_a_sweep_here_and_streams_them(ray_local):
    """Every depth-seed pair a Ray task: the same rows, in the same order, as the sweep in this process at the
    same thread count (only the seconds differ), streamed into the task's view as pairs finish."""
    import dataclasses

    import torch

    from resnet_viz.analysis.experiments import sweep
    from resnet_viz.config import SWEEP_TRAIN
    from resnet_viz.training.tasks import Task
    train = replace(SWEEP_TRAIN, steps=4, eval_every=4, eval_size=50, batch_size=16)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        here = sweep((8, 14), (0, 1), train)
    finally:
        torch.set_num_threads(before)
    task = Task("sweep", {"depths": (8, 14), "seeds": (0, 1), "train": train}, ray=ray_local).start()
    assert task.join(hang_s(180))
    view = task.snapshot()
    assert view.state == "done" and view.cluster, view.error

    def timeless(rows):
        return [dataclasses.replace(row, seconds=0.0) for row in rows]
    assert len(view.result) == 8 and timeless(view.result) == timeless(here)
    assert sorted(timeless(view.rows), key=repr) == sorted(timeless(view.result), key=repr)


def test_the_cli_trains_on_a_running_ray_cluster_and_killed_outright_leaves_nothing_on_it(ray_local, tmp_path):
    """`python -m resnet_viz train --ray ADDRESS`: the run on the cluster at that address (this module's Ray
    instance, as `ray start --head` would give one), its progress printed as it trains. Then the process is
    killed outright (SIGKILL: no atexit, no cleanup), as a server can be: its run's Ray driver notices and
    stops, and Ray ends the driver's actors with it. (The files a run writes at its end: test_cli.py.)"""
    import subprocess
    cli = subprocess.Popen([sys.executable, "-m", "resnet_viz", "train", "--model", "plain-8", "--model", "res-8",
                            "--steps", "100000", "--eval-every", "100000", "--eval-size", "50", "--batch-size", "16",
                            "--ray", ray_local, "--out", str(tmp_path / "run")],
                           stderr=subprocess.PIPE, text=True,
                           cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import threading
    guard = threading.Timer(hang_s(300), cli.kill)  # a hang guard: a killed CLI ends the loop below
    guard.start()
    lines = []
    try:
        for line in cli.stderr:
            lines.append(line)
            if line.startswith("step 10/100000"):
                break
        assert lines and lines[-1].startswith("step 10/100000"), "".join(lines)[-2000:]
        assert actor_pids(), "the run trains in Ray actors, not in the CLI's process"
    finally:
        guard.cancel()
        cli.kill()
        cli.wait(10)
    no_actors_left()


def test_the_experiments_run_on_ray_and_cancel(ray_local):
    """The Experiments page's tasks on the cluster: the lesion study in an actor on a copy of a run's models,
    and a long sweep cancelled mid-way."""
    from resnet_viz.training.tasks import Task
    trained = Job([ModelSpec(depth=8, skip=False), ModelSpec(depth=14)], TrainSpec(steps=3, batch_size=16),
                  queue=WorkerQueue(1, threads=1))
    trained.run_blocking()
    lesion = Task("lesion", job=trained, ray=ray_local).start()
    assert lesion.join(hang_s(120))
    assert lesion.snapshot().state == "done", lesion.snapshot().error
    full, acc, blocks = lesion.snapshot().result["res-14"]
    assert 0 < full <= 1 and len(acc) == len(blocks) == 6
    slow = Task("sweep", {"depths": (56,), "seeds": (0, 1, 2), "train": TrainSpec(steps=500)}, ray=ray_local).start()
    deadline = time.monotonic() + hang_s(60)
    while not actor_pids("_ray_pair") and time.monotonic() < deadline:
        time.sleep(0.1)
    slow.stop()  # Stop pressed: the pairs not done are cancelled
    assert slow.join(hang_s(30)) and slow.snapshot().state == "cancelled"
    deadline = time.monotonic() + hang_s(30)
    while actor_pids("_ray_pair"):
        assert time.monotonic() < deadline, "the sweep's pairs trained on after Stop"
        time.sleep(0.2)


def test_the_cluster_going_away_fails_its_runs_with_a_message_and_the_server_stays_up(ray_local):
    """Last in the module: the module's Ray instance shut down under a training run. The run fails and says
    the cluster is gone, with its records so far; a run asked of it afterwards says it cannot be reached, at
    once. This process, the server in the app, lives on: no driver of Ray's runs in it (Ray ends a driver
    whose cluster went away)."""
    job = Job(MODELS, long_train(), queue=WorkerQueue(1, threads=2), ray=ray_local).start()
    wait_for(job, lambda s: s.step >= 3, timeout=60)
    workers._stop_head()  # the cluster goes away
    assert job.join(hang_s(90))
    snap = job.snapshot()
    assert snap.state == "failed" and "Ray" in snap.error and snap.step >= 3, snap.error
    assert all(np.isfinite(m.train_loss[:3]).all() for m in snap.models)
    again = Job(MODELS, long_train(), queue=WorkerQueue(1, threads=2), ray=ray_local).start()
    assert again.join(hang_s(30))
    assert again.snapshot().state == "failed" and ray_local in again.snapshot().error, again.snapshot().error
    print("the run's message:", snap.error, "| the next run's:", again.snapshot().error)
