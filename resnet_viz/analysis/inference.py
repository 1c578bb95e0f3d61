"""What trained models say about digits: class probabilities for one image, and their test-set mistakes.

Everything returns plain numpy. The models may be training in a worker at the same moment (their weights
are shared, see training/weights.py): we only read them, in eval mode, under inference_mode.
"""
from dataclasses import dataclass

import numpy as np
import torch

from ..data.arrays import MNIST_STATS, normalise

CHUNK = 250  # test images per forward pass: bounded memory, and the UI stays responsive between chunks


def probabilities(nets, digit: np.ndarray, stats: tuple[float, float] = MNIST_STATS) -> np.ndarray:
    """(models, 10) class probabilities for one (28, 28) uint8 digit; a row of NaN for a diverged model.
    `stats`: the (mean, std) the models were trained with (`digits(dataset).stats`)."""
    x = normalise(digit[None], stats).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        rows = [torch.softmax(net.eval()(x)[0], 0) for net in nets]
    return torch.stack(rows).numpy().astype(np.float64)


@dataclass(frozen=True)
class Evaluation:
    """One model on the test set: its predictions and how sure it was."""

    labels: np.ndarray  # (N,)
    predicted: np.ndarray  # (N,)
    confidence: np.ndarray  # (N,) probability of the predicted class

    @property
    def accuracy(self) -> float:
        return float((self.predicted == self.labels).mean())

    def wrong(self) -> np.ndarray:
        """Indices of the misclassified digits, most confidently wrong first."""
        idx = np.flatnonzero(self.predicted != self.labels)
        return idx[np.argsort(-self.confidence[idx], kind="stable")]

    def confusion(self) -> np.ndarray:
        """(10, 10) counts, rows = true class, columns = predicted class (a diverged model's "no prediction"
        counts nowhere)."""
        m = np.zeros((10, 10), np.int64)
        made = self.predicted >= 0
        np.add.at(m, (self.labels[made], self.predicted[made]), 1)
        return m


def evaluate(net, images: np.ndarray, labels: np.ndarray, stats: tuple[float, float] = MNIST_STATS) -> Evaluation:
    """Classify uint8 (N, 28, 28) images, normalised with `stats` as in training; diverged weights give
    prediction -1 (never right)."""
    predicted, confidence = [], []
    with torch.inference_mode():
        net.eval()
        for i in range(0, len(images), CHUNK):
            x = normalise(images[i:i + CHUNK], stats).contiguous(memory_format=torch.channels_last)
            p = torch.softmax(net(x), 1)
            conf, pred = p.max(1)
            pred[~torch.isfinite(conf)] = -1
            predicted.append(pred.numpy())
            confidence.append(torch.nan_to_num(conf, nan=0.0).numpy())
    return Evaluation(np.asarray(labels, np.int64), np.concatenate(predicted), np.concatenate(confidence))
