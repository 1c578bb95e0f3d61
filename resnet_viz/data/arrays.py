"""The datasets by name, as read-only arrays and uint8 tensors shared by every session of a process.

"mnist-5k" is the bundled real-MNIST subset every installation has; "mnist" and "fashion-mnist" are the full
70k sets, loaded only when their files are already here (download.py fetches them on request, never here).
"""
import threading
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch

from ..i18n import LabError
from . import download
from .datasets import (  # noqa: F401 (re-exported)
    DATASETS,
    FASHION_STATS,
    MNIST_MEAN,
    MNIST_STATS,
    MNIST_STD,
    DatasetInfo,
    available,
    datasets,
    info,
)
from .idx import read_idx

ASSETS = Path(__file__).resolve().parents[2] / "assets"  # resnet_viz/data/arrays.py -> the repository root
BUNDLED = ASSETS / "mnist_subset.npz"
SIDE = 28


@dataclass(frozen=True)
class Digits:
    """uint8 images (N, 28, 28) with int labels, split once and never written to."""

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray

    @property
    def info(self) -> DatasetInfo:
        return DATASETS[self.name]

    @property
    def stats(self) -> tuple[float, float]:
        return self.info.stats

    @property
    def title_key(self) -> str:
        return self.info.title_key

    def class_names(self, lang: str) -> list[str]:
        return self.info.class_names(lang)


@cache
def bundled_mnist() -> Digits:
    with np.load(BUNDLED) as f:
        arrays = {k: f[k] for k in ("train_images", "train_labels", "test_images", "test_labels")}
    for a in arrays.values():
        a.flags.writeable = False
    return Digits("mnist-5k", **arrays)


ALL_CLASSES = tuple(range(10))


def digits(name: str = "mnist-5k", classes=ALL_CLASSES) -> Digits:
    """A dataset by name, only the images of `classes` (a run's TrainSpec.class_list). Never downloads: raises
    LabError("error.dataset_not_downloaded") when its files are not here, and an error.idx_* LabError when
    they are damaged."""
    whole = _whole(name)
    return whole if tuple(classes) == ALL_CLASSES else _only(whole, tuple(classes))


_SUBSETS: dict[tuple, tuple[Digits, Digits]] = {}  # (id of the whole set, classes) -> subset; a few, newest last
_SUBSET_LOCK = threading.Lock()


def _only(whole: Digits, classes: tuple[int, ...]) -> Digits:
    """The images of `classes`, in their order in the whole set; kept for the last few class lists asked for."""
    key = (id(whole), classes)
    with _SUBSET_LOCK:
        hit = _SUBSETS.pop(key, None)
        if hit is None or hit[0] is not whole:
            parts = []
            for images, labels in ((whole.train_images, whole.train_labels), (whole.test_images, whole.test_labels)):
                keep = np.isin(labels, classes)
                parts += [images[keep], labels[keep]]
            for a in parts:
                a.flags.writeable = False
            hit = whole, Digits(whole.name, *parts)
        _SUBSETS[key] = hit
        while len(_SUBSETS) > 4:
            _SUBSETS.pop(next(iter(_SUBSETS)))
        return hit[1]


def _whole(name: str) -> Digits:
    if info(name).bundled:
        return bundled_mnist()
    files = download.local_files(name)
    if files is None:
        raise LabError("error.dataset_not_downloaded", name=name, mb=round(info(name).download_bytes / 1e6))
    return _load(name, tuple(files[f] for f in download.FILES))


_LOADED: dict[str, tuple[tuple, Digits]] = {}  # name -> (files' path, size, mtime; the arrays read from them)
_LOAD_LOCK = threading.Lock()  # one read at a time: two sessions asking at once share one 55 MB copy


def _load(name: str, paths: tuple[Path, ...]) -> Digits:
    """The files' arrays, read once per process, and again only when the files change (a new download)."""
    with _LOAD_LOCK:
        try:
            signature = tuple((str(p), s.st_size, s.st_mtime_ns) for p in paths for s in [p.stat()])
            if name in _LOADED and _LOADED[name][0] == signature:
                return _LOADED[name][1]
            _LOADED.pop(name, None)
            loaded = _read(name, paths)
        except FileNotFoundError:  # removed since local_files looked
            raise LabError("error.dataset_not_downloaded", name=name,
                           mb=round(info(name).download_bytes / 1e6)) from None
        _LOADED[name] = signature, loaded
        return loaded


def _read(name: str, paths: tuple[Path, ...]) -> Digits:
    """Read and cross-check the four IDX files (train images, labels, test images, labels)."""
    train_images, train_labels, test_images, test_labels = (read_idx(p, ndim=3 if "images" in p.name else 1)
                                                            for p in paths)
    for images, labels, image_path, label_path in ((train_images, train_labels, paths[0], paths[1]),
                                                   (test_images, test_labels, paths[2], paths[3])):
        if images.shape[1:] != (SIDE, SIDE):
            raise LabError("error.idx_shape", file=image_path.name, shape="×".join(map(str, images.shape)))
        if len(labels) and labels.max() > 9:
            raise LabError("error.idx_labels", file=label_path.name, value=int(labels.max()))
        if len(images) != len(labels):
            raise LabError("error.idx_count", file=label_path.name, images=len(images), labels=len(labels))
    return Digits(name, train_images, train_labels, test_images, test_labels)  # read-only: they view bytes


def normalise(images: np.ndarray, stats: tuple[float, float] = MNIST_STATS) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28), scaled to [0, 1] then standardised as in training."""
    x = torch.tensor(images, dtype=torch.float32).div_(255.0)
    return x.sub_(stats[0]).div_(stats[1]).unsqueeze(1)


@dataclass(frozen=True)
class TensorDigits:
    """Images stay uint8 (N, 1, 28, 28): as float, 70k images are 220 MB in every worker process, so the
    trainer normalises each minibatch as it draws it (`normalise`), the same arithmetic as `normalise()`."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    stats: tuple[float, float] = MNIST_STATS

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images drawn from train_x/test_x -> float32, standardised (a new tensor)."""
        return x.to(torch.float32, copy=True).div_(255.0).sub_(self.stats[0]).div_(self.stats[1])


_TENSORS: dict[tuple, tuple[Digits, TensorDigits]] = {}


def tensors(name: str = "mnist-5k", classes=ALL_CLASSES) -> TensorDigits:
    """The dataset (only `classes`) as ready-to-index tensors, built once per process (per load of its files);
    workers only index into them."""
    d = digits(name, classes)
    key = (name, tuple(classes))
    made = _TENSORS.get(key)
    if made is None or made[0] is not d:
        made = _TENSORS[key] = d, _tensors(d)
    return made[1]


def _tensors(d: Digits) -> TensorDigits:

    def shared(a: np.ndarray) -> torch.Tensor:
        with warnings.catch_warnings():  # the arrays are read-only, and nothing ever writes these tensors
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(a)  # no copy: the Digits arrays and the tensors are the same memory

    return TensorDigits(shared(d.train_images).unsqueeze(1), torch.from_numpy(d.train_labels.astype(np.int64)),
                        shared(d.test_images).unsqueeze(1), torch.from_numpy(d.test_labels.astype(np.int64)),
                        d.stats)
