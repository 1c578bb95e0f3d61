"""The device setting: CPU everywhere, CUDA or MPS where present; the server's models get the GPU's weights."""
import pytest
import torch
from speed import hang_s

from resnet_viz.config import LabError, ModelSpec, TrainSpec
from resnet_viz.training import device
from resnet_viz.training.engine import Job, WorkerQueue


def test_auto_picks_the_best_available_and_cpu_is_always_there():
    assert device.available()[-1] == "cpu"
    assert device.resolve("auto").type == device.available()[0]
    assert device.resolve("cpu").type == "cpu"


@pytest.mark.parametrize("name", ["cuda", "mps"])
def test_a_missing_device_is_a_clear_error_before_anything_starts(name):
    if name in device.available():
        pytest.skip(f"this machine has {name}")
    with pytest.raises(LabError) as e:
        Job([ModelSpec(depth=8)], TrainSpec(steps=2, device=name), queue=WorkerQueue(1))
    assert e.value.key == "error.device_unavailable" and name in e.value.text("en")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")
@pytest.mark.parametrize("background", [False, True])
def test_training_on_cuda_publishes_the_weights_to_the_server_models(background):
    spec = TrainSpec(steps=25, eval_every=10, device="cuda")
    job = Job([ModelSpec(depth=8, skip=False), ModelSpec(depth=20)], spec, queue=WorkerQueue(1))
    before = [p.detach().clone() for p in job.nets[1].parameters()]
    if background:
        job.start()
        assert job.join(hang_s(300))
        snap = job.snapshot()
    else:
        snap = job.run_blocking()
    assert snap.state == "done", snap.error
    for v in snap.models:
        assert torch.isfinite(torch.from_numpy(v.train_loss)).all() and v.test_acc.size == 3
    after = list(job.nets[1].parameters())
    assert all(p.device.type == "cpu" for p in after)
    assert any(not torch.equal(a, b) for a, b in zip(before, after)), "the server's model never saw training"
    # The published weights are the trained ones: the CPU model scores what the worker recorded at the end.
    from resnet_viz.analysis.inference import evaluate
    from resnet_viz.data.arrays import bundled_mnist
    d = bundled_mnist()
    acc = evaluate(job.nets[1], d.test_images[:spec.eval_size], d.test_labels[:spec.eval_size]).accuracy
    assert acc == pytest.approx(snap.models[1].test_acc[-1], abs=0.01)


def test_the_copy_and_publish_path_of_a_gpu_matches_training_in_place(monkeypatch):
    """No GPU here: train copies on the CPU through the very path a GPU takes (own copies, weights published
    every PUBLISH_EVERY steps and at the end) and compare with training the shared models in place."""
    import copy

    def run(copies: bool):
        if copies:
            monkeypatch.setattr(device, "on_device", lambda nets, where: [copy.deepcopy(n) for n in nets])
        job = Job([ModelSpec(depth=8, skip=False), ModelSpec(depth=8)], TrainSpec(steps=23, eval_every=10),
                  queue=WorkerQueue(1))
        seen = []
        snap = job.run_blocking(lambda step, losses: seen.append(
            (step, job.nets[1].head[2].weight.detach().clone())))
        monkeypatch.undo()
        return job, snap, seen

    job_a, snap_a, _ = run(copies=False)
    job_b, snap_b, seen = run(copies=True)
    for a, b in zip(snap_a.models, snap_b.models):
        assert (a.train_loss == b.train_loss).all() and (a.test_acc == b.test_acc).all()
    for na, nb in zip(job_a.nets, job_b.nets):
        for pa, pb in zip(na.state_dict().values(), nb.state_dict().values()):
            assert torch.equal(pa, pb), "the server's models must end with the trained weights"
    # Between publications the server's copy holds still; at each publication it jumps to the trained one.
    changes = [s for (s, w), (_, w0) in zip(seen[1:], seen) if not torch.equal(w, w0)]
    assert changes == [s for s in range(2, 24) if s % device.PUBLISH_EVERY == 0], changes
