import numpy as np
import pytest
import torch

from resnet_viz.data import MNIST_MEAN, MNIST_STD, bundled_mnist, normalise, tensors


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
    assert t.train_x.dtype == torch.float32
    assert t.train_y.dtype == torch.int64
    assert abs(t.train_x.mean().item()) < 0.05
    assert abs(t.train_x.std().item() - 1.0) < 0.1
    d = bundled_mnist()
    assert torch.equal(t.train_y, torch.from_numpy(d.train_labels.astype(np.int64)))
    assert torch.equal(t.test_y, torch.from_numpy(d.test_labels.astype(np.int64)))


def test_tensors_default_and_named_calls_share_one_copy():
    assert tensors() is tensors("mnist-5k")


def test_tensors_unknown_dataset():
    with pytest.raises(KeyError):
        tensors("cifar-10")


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
