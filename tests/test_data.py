import os
from pathlib import Path

import numpy as np
import pytest
import torch

from resnet_viz.data import arrays as data
from resnet_viz.data.arrays import (
    MNIST_MEAN,
    MNIST_STD,
    bundled_mnist,
    normalise,
    tensors,
)
from resnet_viz.i18n import LabError


def test_bundled_subset_shapes_and_dtypes():
    d = bundled_mnist()
    assert d.train_images.shape == (4000, 28, 28)
    assert d.test_images.shape == (1000, 28, 28)
    assert d.train_labels.shape == (4000,)
    assert d.test_labels.shape == (1000,)
    assert d.train_images.dtype == np.uint8 and d.test_images.dtype == np.uint8
    assert np.issubdtype(d.train_labels.dtype, np.integer)
    assert d.train_images.max() > 200 and d.train_images.min() == 0  # real digits, full range


def test_bundled_subset_is_class_balanced():
    d = bundled_mnist()
    assert np.bincount(d.train_labels, minlength=10).tolist() == [400] * 10
    assert np.bincount(d.test_labels, minlength=10).tolist() == [100] * 10


def test_bundled_subset_is_cached_and_read_only():
    d = bundled_mnist()
    assert bundled_mnist() is d
    for a in (d.train_images, d.train_labels, d.test_images, d.test_labels):
        assert not a.flags.writeable
        with pytest.raises(ValueError):
            a[0] = 0


def test_train_and_test_do_not_share_images():
    d = bundled_mnist()
    train = {img.tobytes() for img in d.train_images}
    assert not any(img.tobytes() in train for img in d.test_images)


def test_tensors_cached_and_normalised():
    t = tensors()
    assert tensors() is t
    assert tensors("mnist-5k") is tensors("mnist-5k")  # the engine's spelling
    assert t.train_x.shape == (4000, 1, 28, 28) and t.test_x.shape == (1000, 1, 28, 28)
    assert t.train_x.dtype == torch.uint8  # 4x smaller in every worker; minibatches are normalised as drawn
    assert t.train_y.dtype == torch.int64
    x = t.normalise(t.train_x)
    assert x.dtype == torch.float32 and t.train_x.dtype == torch.uint8
    assert abs(x.mean().item()) < 0.05
    assert abs(x.std().item() - 1.0) < 0.1
    d = bundled_mnist()
    # bit for bit what the float tensors held before: results on the bundled subset do not change
    assert torch.equal(x, normalise(d.train_images)) and torch.equal(t.normalise(t.test_x), normalise(d.test_images))
    assert torch.equal(t.normalise(t.train_x[torch.tensor([5, 2])]), normalise(d.train_images[[5, 2]]))
    assert torch.equal(t.train_y, torch.from_numpy(d.train_labels.astype(np.int64)))
    assert torch.equal(t.test_y, torch.from_numpy(d.test_labels.astype(np.int64)))


def test_tensors_default_and_named_calls_share_one_copy():
    assert tensors() is tensors("mnist-5k")


def test_tensors_unknown_dataset():
    with pytest.raises(LabError) as e:
        tensors("cifar-10")
    assert e.value.key == "error.dataset_unknown"


def test_normalise_values():
    images = np.array([[[0, 255], [51, 0]]], dtype=np.uint8)
    x = normalise(images)
    assert x.shape == (1, 1, 2, 2)
    expected = (torch.tensor([[0.0, 1.0], [0.2, 0.0]]) - MNIST_MEAN) / MNIST_STD
    torch.testing.assert_close(x[0, 0], expected)
    assert images[0, 0, 1] == 255  # input untouched


def test_normalise_accepts_read_only_input():
    x = normalise(bundled_mnist().test_images[:3])
    assert x.shape == (3, 1, 28, 28)


# ---- Fashion-MNIST from Debian's dataset-fashion-mnist package (CI installs it) -----------------------------

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture
def debian_fashion(monkeypatch):
    if not (DEBIAN_FASHION / "train-images-idx3-ubyte.gz").is_file():
        if os.environ.get("CI") == "true":
            pytest.fail("CI installs Debian's dataset-fashion-mnist; its files are missing")
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    monkeypatch.delenv("RESNET_LAB_FASHION_DIR", raising=False)
    assert data.available("fashion-mnist")
    return data.digits("fashion-mnist")


def test_fashion_mnist_from_the_debian_package(debian_fashion):
    d = debian_fashion
    assert d.train_images.shape == (60000, 28, 28) and d.test_images.shape == (10000, 28, 28)
    assert d.train_images.dtype == np.uint8 and not d.train_images.flags.writeable
    assert np.bincount(d.train_labels, minlength=10).tolist() == [6000] * 10
    assert np.bincount(d.test_labels, minlength=10).tolist() == [1000] * 10
    mean, std = d.stats
    sample = d.train_images[::10] / 255.0
    assert abs(sample.mean() - mean) < 0.005 and abs(sample.std() - std) < 0.005
    assert d.class_names("en") == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                                   "Sneaker", "Bag", "Ankle boot"]
    t = tensors("fashion-mnist")
    assert tensors("fashion-mnist") is t and t.train_x.dtype == torch.uint8 and t.stats == d.stats
    assert t.train_x.data_ptr() == torch.from_numpy(np.asarray(d.train_images)).data_ptr()  # one copy


def test_short_training_run_on_fashion_mnist(debian_fashion):
    from resnet_viz.config import ModelSpec, TrainSpec
    from resnet_viz.training.engine import Job, WorkerQueue

    job = Job([ModelSpec(depth=8, skip=False), ModelSpec(depth=8)],
              TrainSpec(steps=4, batch_size=16, eval_size=50, eval_every=2), queue=WorkerQueue(1),
              dataset="fashion-mnist")
    snap = job.run_blocking()
    assert snap.state == "done" and snap.step == 4
    for v in snap.models:
        assert np.isfinite(v.train_loss).all() and len(v.test_acc) == 2  # at steps 2 and 4
