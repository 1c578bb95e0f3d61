"""The experiments as functions (quick, small nets), the sweep CLI, and background tasks."""
import csv
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as nnf
from speed import hang_s
from test_cli import run_main

from resnet_viz.analysis import experiments as E
from resnet_viz.config import ModelSpec, TrainSpec
from resnet_viz.data.arrays import bundled_mnist
from resnet_viz.training.engine import Job, WorkerQueue
from resnet_viz.training.tasks import Task

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def trained():
    job = Job([ModelSpec(depth=14, skip=False), ModelSpec(depth=14)], TrainSpec(steps=60))
    job.run_blocking()
    return job


def test_lesion_deletes_each_block_on_a_copy(trained):
    d = bundled_mnist()
    plain, res = trained.nets
    before = [p.detach().clone() for p in res.parameters()]
    acc_plain = E.lesion(plain, d.test_images[:300], d.test_labels[:300])
    acc_res = E.lesion(res, d.test_images[:300], d.test_labels[:300])
    # plain-14: blocks s2.b1 and s3.b1 change shape, so they cannot be deleted; residual ones keep the skip
    assert np.isnan(acc_plain).tolist() == [False, False, True, False, True, False]
    assert np.isfinite(acc_res).all()
    assert all(torch.equal(a, b) for a, b in zip(before, res.parameters()))
    assert [type(b).__name__ for _, b in res.blocks()] == ["ResidualBlock"] * 6  # nothing left swapped


def test_landscape_centre_is_the_trained_loss_and_the_grid_is_complete(trained):
    coords, loss = E.landscape_2d(trained.nets[1], resolution=3, span=1.0)
    x, y = E._landscape_data()
    with torch.inference_mode():
        direct = float(nnf.cross_entropy(trained.nets[1].eval()(x), y))
    assert coords.tolist() == [-1.0, 0.0, 1.0]
    assert loss[1, 1] == pytest.approx(direct, rel=1e-4)
    assert np.isfinite(loss).all() and loss.min() == loss[1, 1]
    coords, _ = E.landscape_2d(trained.nets[1], resolution=3)  # the default reach: close to the weights
    assert coords.tolist() == [-E.LANDSCAPE_SPAN, 0.0, E.LANDSCAPE_SPAN]


def test_filter_normalised_directions_match_each_filter_norm(trained):
    net = trained.nets[1]
    d = E.filter_normalised_direction(net, torch.Generator().manual_seed(0))
    for p, u in zip(net.parameters(), d):
        if p.dim() <= 1:
            assert not u.any()
        else:
            dims = tuple(range(1, p.dim()))
            assert torch.allclose(torch.linalg.vector_norm(u, dim=dims), torch.linalg.vector_norm(p.detach(), dim=dims),
                                  rtol=1e-4)


def test_interpolation_ends_at_the_initial_and_trained_losses(trained):
    start = E.initial_nets(trained.models, trained.train.seed)[1]
    ts, loss = E.interpolation_1d(start, trained.nets[1], points=5, margin=0.0)
    x, y = E._landscape_data()
    with torch.inference_mode():
        for net, value in ((start, loss[0]), (trained.nets[1], loss[-1])):
            assert value == pytest.approx(float(nnf.cross_entropy(net.eval()(x), y)), rel=1e-4)


def test_gradient_correlation_falls_with_distance_and_shatters_in_deep_plain_nets():
    d = bundled_mnist()
    nets = E.initial_nets([ModelSpec(depth=56, skip=False), ModelSpec(depth=56)], 0)
    (_, plain), (_, res) = (E.gradient_correlation(n, d.test_images[0], d.test_images[1]) for n in nets)
    assert plain[0] > plain[-1] and res[0] > res[-1]
    assert res[-1] > 0.3 > plain[-1]  # residual gradients stay correlated over the path, plain ones do not


def test_sweep_rows_and_cancel():
    rows = E.sweep(depths=(8,), seeds=(0,), train=TrainSpec(steps=5, eval_every=5))
    assert [(r.depth, r.skip) for r in rows] == [(8, False), (8, True)]
    assert all(np.isfinite(r.final_train_loss) and 0 <= r.final_train_error <= 1 for r in rows)
    with pytest.raises(E.Cancelled):
        E.sweep(depths=(8,), seeds=(0,), train=TrainSpec(steps=5, eval_every=5), cancelled=lambda: True)
    summary = E.sweep_summary(rows)
    assert set(summary) == {(False, 8), (True, 8)} and summary[(True, 8)]["seeds"] == 1


def test_sweep_cli_writes_csv_and_figure(tmp_path):
    r = subprocess.run([sys.executable, "-m", "resnet_viz", "sweep", "--depths", "8,14", "--seeds", "1", "--steps",
                        "5", "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=hang_s(300))
    assert r.returncode == 0, r.stderr
    with open(tmp_path / "sweep.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(row["depth"], row["skip"]) for row in rows] == [("8", "False"), ("8", "True"), ("14", "False"),
                                                            ("14", "True")]
    assert (tmp_path / "degradation.png").stat().st_size > 10_000
    assert E.read_sweep_csv(tmp_path / "sweep.csv")[0].depth == 8


@pytest.mark.parametrize("args", [["--depths", "9"], ["--depths", "8,x"], ["--seeds", "0"], ["--steps", "0"]])
def test_sweep_cli_rejects_bad_values_in_one_line(tmp_path, args, capsys):
    code, err = run_main(["sweep", *args, "--out", str(tmp_path)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_tasks_stream_rows_run_on_session_models_and_cancel(trained):
    q = WorkerQueue(1)
    task = Task("sweep", {"depths": (8,), "seeds": (0, 1), "train": TrainSpec(steps=5, eval_every=5)}, queue=q)
    task.start()
    assert task.join(hang_s(120))
    view = task.snapshot()
    assert view.state == "done" and len(view.rows) == 4 and view.done == view.total == 2
    lesion = Task("lesion", job=trained, queue=q).start()
    assert lesion.join(hang_s(120)) and lesion.snapshot().state == "done"
    full, acc, blocks = lesion.snapshot().result["res-14"]
    assert 0 < full <= 1 and len(acc) == 6 and blocks == ["s1.b1", "s1.b2", "s2.b1", "s2.b2", "s3.b1", "s3.b2"]
    slow = Task("sweep", {"depths": (56,), "seeds": (0, 1, 2), "train": TrainSpec(steps=500)}, queue=q).start()
    time.sleep(2)
    slow.stop()
    assert slow.join(hang_s(30)) and slow.snapshot().state == "cancelled"
    with pytest.raises(ValueError):
        Task("lesion")  # needs models
