"""The papers' findings, checked by real training on the bundled MNIST digits (slow; run in CI).

These are the claims the README's "What you can show" makes; if a change to the models, the data or the
defaults breaks one of them, the lesson breaks, and this fails.
"""
import numpy as np
import pytest

from resnet_viz import experiments as E
from resnet_viz.config import PRESETS, SWEEP_TRAIN, ModelSpec, TrainSpec, replace
from resnet_viz.data import bundled_mnist
from resnet_viz.engine import Job
from resnet_viz.plots import first_last_ratio

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_plain_56_trains_worse_than_plain_20_and_res_56_at_the_sweep_budget(seed):
    models = [ModelSpec(depth=20, skip=False), ModelSpec(depth=56, skip=False), ModelSpec(depth=56)]
    snap = Job(models, replace(SWEEP_TRAIN, seed=seed)).run_blocking()
    loss = {v.name: v.final_train_loss() for v in snap.models}
    assert loss["plain-56"] > loss["plain-20"] and loss["plain-56"] > loss["res-56"], loss


def test_deleting_a_block_barely_hurts_a_residual_net_and_breaks_a_plain_one():
    """Veit et al.'s lesion study: averaged over the blocks that keep their shape."""
    snap_job = Job([ModelSpec(depth=20, skip=False), ModelSpec(depth=56)], TrainSpec(steps=300))
    snap_job.run_blocking()
    d = bundled_mnist()
    drops = {}
    for spec, net in zip(snap_job.models, snap_job.nets):
        full = E.accuracy(net, d.test_images, d.test_labels)
        keep = [E._shape_preserving(b) for _, b in net.blocks()]
        acc = E.lesion(net, d.test_images, d.test_labels)[keep]
        drops[spec.name] = (full, float(np.mean(full - acc)))
    assert drops["plain-20"][0] > 0.9 and drops["res-56"][0] > 0.9, drops  # both trained well first
    assert drops["res-56"][1] < 0.05, drops
    assert drops["plain-20"][1] > 0.30, drops


def test_without_batch_norm_plain_gradients_vanish_and_residual_ones_do_not():
    snap = Job(PRESETS["vanishing"].models, TrainSpec(steps=3)).run_blocking()
    ratio = {v.name: first_last_ratio(v.grad_norm)[0] for v in snap.models}  # at the first step
    assert ratio["plain-20-nobn"] < 1e-2 and ratio["plain-56-nobn"] < 1e-2, ratio
    assert 0.1 <= ratio["res-20-nobn"] <= 10 and 0.1 <= ratio["res-56-nobn"] <= 10, ratio


def test_rezero_trains_at_depth_56_without_batch_norm():
    preset = PRESETS["rezero"]
    snap = Job(preset.models, preset.train).run_blocking()
    loss = {v.name: v.final_train_loss() for v in snap.models}
    rezero = next(v.name for v in snap.models if v.spec.learn_alpha)
    assert loss[rezero] < 1.5, loss
    assert loss["plain-56-nobn"] > 2.0, loss
