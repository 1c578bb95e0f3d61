"""The time a run will take, said next to Train, and a Stop that is acknowledged at once."""
import time

import pytest
from speed import hang_s
from test_app import button, new_app, run_until

from resnet_viz.config import PRESETS, ModelSpec, TrainSpec, replace
from resnet_viz.training.engine import Job, WorkerQueue
from resnet_viz.training.pace import Pace, estimate


def test_the_estimate_grows_with_steps_models_depth_and_batch_and_follows_the_servers_pace():
    preset = PRESETS["degradation"]
    base = estimate(preset.models, preset.train, 2).seconds
    assert base > 0
    assert estimate(preset.models, replace(preset.train, steps=240), 2).seconds == pytest.approx(2 * base, rel=0.1)
    assert estimate(preset.models, replace(preset.train, batch_size=128), 2).seconds > 1.5 * base
    assert estimate(preset.models[:2], preset.train, 2).seconds < base / 2  # the depth-56 nets cost the most
    assert estimate(preset.models, preset.train, 1).seconds > 1.5 * base  # one worker trains all four
    fast = Pace(prior=100.0)
    assert estimate(preset.models, preset.train, 2, fast).seconds < base
    six = [ModelSpec(depth=110, width=2.0, name=f"r{i}") for i in range(6)]
    assert estimate(six, TrainSpec(), 2).needs_confirmation and not estimate(preset.models, preset.train, 2).needs_confirmation


def test_a_finished_run_sets_the_servers_pace(jobs):
    pace = Pace(prior=1e6)  # absurdly fast: the run's own pace must pull it down
    job = Job([ModelSpec(depth=8, skip=False), ModelSpec(depth=8)], TrainSpec(steps=12, eval_every=12),
              queue=WorkerQueue(1))
    from resnet_viz.training import engine
    engine.PACE, saved = pace, engine.PACE
    try:
        jobs.append(job.start())
        assert job.join(hang_s(120)) and job.snapshot().state == "done"
    finally:
        engine.PACE = saved
    # half the prior and half what the run measured: a CPU's few to few hundred GFLOP/s, not a million
    assert 0.5e6 < pace.gflops < 0.5e6 + 5000, pace.gflops


def test_stop_is_acknowledged_at_once_and_ends_the_run_at_a_step_boundary(jobs):
    job = Job([ModelSpec(depth=20)], TrainSpec(steps=5000), queue=WorkerQueue(1))
    jobs.append(job.start())
    deadline = time.monotonic() + hang_s(60)
    while job.snapshot().step < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    job.stop()
    snap = job.snapshot()
    assert snap.stopping and not snap.finished  # what the status line says right away
    assert job.join(hang_s(30))
    end = job.snapshot()
    assert end.state == "stopped" and not end.stopping and end.step >= 2


def test_a_long_run_asks_before_it_trains_and_the_page_says_the_estimate():
    at = new_app()
    at.number_input[0].set_value(5000)  # steps: the default lesson at 5000 steps is many minutes
    at.run()
    button(at, "Train").click()
    at.run()
    assert at.warning and "would take about" in at.warning[0].value, [w.value for w in at.warning]
    assert not at.get("progress") and not button(at, "Train").disabled  # nothing trains yet
    button(at, "Cancel").click()
    at.run()
    assert not at.warning
    run_until(at, lambda a: any("to train on this server" in c.value for c in a.caption), 30)
    button(at, "Train").click()
    at.run()
    button(at, "Train anyway").click()
    at.run()
    assert button(at, "Train").disabled  # it trains now
    button(at, "Stop").click()
    at.run()
    run_until(at, lambda a: not button(a, "Train").disabled, 60)
