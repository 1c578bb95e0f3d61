"""The digits: the bundled real-MNIST subset, as read-only tensors shared by every session of a process."""
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch

ASSETS = Path(__file__).resolve().parent.parent / "assets"
BUNDLED = ASSETS / "mnist_subset.npz"
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # the usual full-MNIST statistics; drawn digits use them too


@dataclass(frozen=True)
class Digits:
    """uint8 images (N, 28, 28) with int labels, split once and never written to."""

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


@cache
def bundled_mnist() -> Digits:
    with np.load(BUNDLED) as f:
        arrays = {k: f[k] for k in ("train_images", "train_labels", "test_images", "test_labels")}
    for a in arrays.values():
        a.flags.writeable = False
    return Digits("mnist-5k", **arrays)


def digits(name: str = "mnist-5k") -> Digits:
    """A dataset by name (the bundled subset is the one every installation has)."""
    if name != "mnist-5k":
        raise KeyError(name)
    return bundled_mnist()


def normalise(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28), scaled to [0, 1] then standardised as in training."""
    x = torch.tensor(images, dtype=torch.float32).div_(255.0)
    return x.sub_(MNIST_MEAN).div_(MNIST_STD).unsqueeze(1)


@dataclass(frozen=True)
class TensorDigits:
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


def tensors(name: str = "mnist-5k") -> TensorDigits:
    """The dataset as ready-to-train tensors, built once per process; workers only index into them."""
    return _tensors(name)


@cache
def _tensors(name: str) -> TensorDigits:
    d = digits(name)
    return TensorDigits(normalise(d.train_images), torch.from_numpy(d.train_labels.astype(np.int64)),
                        normalise(d.test_images), torch.from_numpy(d.test_labels.astype(np.int64)))
