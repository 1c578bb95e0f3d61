"""Which datasets the lab offers, what each needs (normalisation, class names, download size) and whether it
is here already: light enough (no torch, no numpy) for the first page to list them at once."""
from dataclasses import dataclass

from ..i18n import LabError, tr
from . import download

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # the usual full-MNIST statistics; drawn digits use them too
MNIST_STATS = (MNIST_MEAN, MNIST_STD)
FASHION_STATS = (0.2860, 0.3530)  # Fashion-MNIST's training set


@dataclass(frozen=True)
class DatasetInfo:
    """What the UI shows and the models need to know about a dataset before (or without) loading it."""

    name: str  # the id used everywhere: "mnist-5k", "mnist", "fashion-mnist"
    stats: tuple[float, float]  # (mean, std) of its training pixels scaled to [0, 1]
    class_keys: tuple[str, ...] | None = None  # catalogue keys of the class names; None: the digits 0-9

    @property
    def title_key(self) -> str:
        return f"dataset.{self.name}"

    @property
    def bundled(self) -> bool:
        return self.name == "mnist-5k"

    @property
    def download_bytes(self) -> int:
        """What fetching it downloads when nothing is here yet (0 for the bundled subset)."""
        return 0 if self.bundled else download.download_bytes(self.name)

    def class_names(self, lang: str) -> list[str]:
        return [tr(lang, k) for k in self.class_keys] if self.class_keys else [str(i) for i in range(10)]


DATASETS = {d.name: d for d in (
    DatasetInfo("mnist-5k", MNIST_STATS),
    DatasetInfo("mnist", MNIST_STATS),
    DatasetInfo("fashion-mnist", FASHION_STATS, tuple(f"class.fashion-mnist.{i}" for i in range(10))),
)}


def datasets() -> list[DatasetInfo]:
    """Every dataset, the bundled one first."""
    return list(DATASETS.values())


def info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise LabError("error.dataset_unknown", name=name, choices=", ".join(DATASETS))
    return DATASETS[name]


def available(name: str) -> bool:
    """True when `digits(name)` needs no download (the files are here; their contents are checked on load)."""
    return info(name).bundled or download.local_files(name) is not None


