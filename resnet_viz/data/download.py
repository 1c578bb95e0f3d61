"""Getting the full datasets onto this machine: the official IDX files, checksum-verified, in a cache folder.

Only `fetch` touches the network, and only when asked to (the CLI's `download`, a download button): loading
(arrays.py) uses what `local_files` finds, so a training worker never starts a 30 MB download by surprise.
pooch downloads each file to a temporary name and moves it into place only once its hash matches, so a file
in the cache is complete; a cached file whose hash no longer matches is downloaded again.

Environment: RESNET_LAB_CACHE (cache folder, default the OS cache's resnet-lab), RESNET_LAB_DATA_URL (a
mirror holding <dataset>/<file>; the tests serve one on 127.0.0.1), RESNET_LAB_FASHION_DIR (a folder that
already holds the Fashion-MNIST files; Debian's dataset-fashion-mnist package is looked for too).
"""
import contextlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..i18n import LabError

FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz")
Registry = dict[str, tuple[str, int]]  # file name -> (pooch hash "md5:...", size in bytes)
Progress = Callable[[int, int], None]  # progress(done_bytes, total_bytes)

CHUNK = 64 * 1024  # bytes per read: pooch's 1 KiB default means 26k Python iterations for one file
TIMEOUT = 20  # seconds without data before a download counts as failed
_FETCHING = threading.Lock()


@dataclass(frozen=True)
class Source:
    url: str  # official base URL
    registry: Registry
    local_dirs: tuple[str, ...] = ()  # folders that may already hold the files (a distribution's package)
    local_env: str | None = None  # environment variable naming such a folder, looked at first


# The md5s are torchvision's for the same files (torchvision/datasets/mnist.py); sizes are the official files'.
SOURCES = {
    "mnist": Source("https://ossci-datasets.s3.amazonaws.com/mnist/", {
        "train-images-idx3-ubyte.gz": ("md5:f68b3c2dcbeaaa9fbdd348bbdeb94873", 9912422),
        "train-labels-idx1-ubyte.gz": ("md5:d53e105ee54ea40749a09fcbcd1e9432", 28881),
        "t10k-images-idx3-ubyte.gz": ("md5:9fb629c4189551a2d022fa330f9573f3", 1648877),
        "t10k-labels-idx1-ubyte.gz": ("md5:ec29112dd5afa0611ce80d1b7f02629c", 4542),
    }),
    "fashion-mnist": Source("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", {
        "train-images-idx3-ubyte.gz": ("md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d", 26421880),
        "train-labels-idx1-ubyte.gz": ("md5:25c81989df183df01b3e8a0aad5dffbe", 29515),
        "t10k-images-idx3-ubyte.gz": ("md5:bef4ecab320f06d8554ea6380940ec79", 4422102),
        "t10k-labels-idx1-ubyte.gz": ("md5:bb300cfdad3c16e7a12a480ee83cd310", 5148),
    }, local_dirs=("/usr/share/datasets/fashion-mnist",), local_env="RESNET_LAB_FASHION_DIR"),
}


def _source(name: str) -> Source:
    if name not in SOURCES:
        raise LabError("error.dataset_unknown", name=name, choices=", ".join(SOURCES))
    return SOURCES[name]


def download_bytes(name: str) -> int:
    """How much `fetch(name)` downloads when nothing is here yet."""
    return sum(size for _, size in _source(name).registry.values())


def cache_dir() -> Path:
    env = os.environ.get("RESNET_LAB_CACHE")
    if env:
        return Path(env)
    import pooch
    return Path(pooch.os_cache("resnet-lab"))


def base_url(name: str) -> str:
    mirror = os.environ.get("RESNET_LAB_DATA_URL")
    return f"{mirror.rstrip('/')}/{name}/" if mirror else _source(name).url


def local_dir(name: str) -> Path | None:
    """A folder outside the cache that holds all four files (not hash-checked: a distribution may recompress
    them, as Debian does; the IDX reader validates their contents instead)."""
    source = _source(name)
    env = os.environ.get(source.local_env) if source.local_env else None
    for folder in ([env] if env else []) + list(source.local_dirs):
        if all((Path(folder) / f).is_file() for f in FILES):
            return Path(folder)
    return None


def local_files(name: str) -> dict[str, Path] | None:
    """The dataset's four files, from a local folder or the cache, without any network; None if not here."""
    folder = local_dir(name) or cache_dir() / name
    paths = {f: folder / f for f in FILES}
    return paths if all(p.is_file() for p in paths.values()) else None


class _Bar:
    """The progress bar pooch's HTTPDownloader drives (total, update, reset, close), turned into one
    progress(done, total) over all files of a dataset."""

    def __init__(self, progress: Progress, before: int, grand_total: int):
        self.progress, self.before, self.grand_total = progress, before, grand_total
        self.total, self.n = 0, 0

    def update(self, n: int) -> None:
        self.n += n
        if self.total:  # pooch counts whole chunks, so the last one overshoots
            self.n = min(self.n, self.total)
        self.progress(min(self.before + self.n, self.grand_total), self.grand_total)

    def reset(self) -> None:
        self.n = 0

    def close(self) -> None:
        pass


def fetch(name: str, progress: Progress | None = None, registry: Registry | None = None) -> dict[str, Path]:
    """Make the dataset's files local, downloading what is missing or damaged, and return their paths.
    `registry` replaces the official hashes and sizes (for a mirror with other files, e.g. the tests').
    Raises LabError: error.download_offline, error.download_http, error.download_checksum (the bad file is
    deleted), error.download_write."""
    source = _source(name)
    if registry is None:
        here = local_dir(name)
        if here is not None:
            if progress is not None:
                progress(download_bytes(name), download_bytes(name))
            return {f: here / f for f in FILES}
        registry = source.registry
    import pooch

    with _FETCHING:  # two sessions asking at once: the second finds the first's files in the cache
        return _retrieve(name, registry, progress, pooch)


def _retrieve(name: str, registry: Registry, progress: Progress | None, pooch) -> dict[str, Path]:
    url, folder = base_url(name), cache_dir() / name
    total, done, paths = sum(size for _, size in registry.values()), 0, {}
    for file in FILES:
        known_hash, size = registry[file]
        bar = _Bar(progress, done, total) if progress is not None else False
        downloader = pooch.HTTPDownloader(progressbar=bar, chunk_size=CHUNK, timeout=TIMEOUT)
        with _errors_as_lab_errors(url + file, folder / file), _quiet_pooch():
            paths[file] = Path(pooch.retrieve(url + file, known_hash, fname=file, path=folder,
                                              downloader=downloader))
        done += size
        if progress is not None:
            progress(done, total)
    return paths


@contextlib.contextmanager
def _errors_as_lab_errors(url: str, target: Path):
    import requests

    host = urlsplit(url).netloc or url
    try:
        yield
    except requests.exceptions.HTTPError as e:
        status = e.response.status_code if e.response is not None else "?"
        raise LabError("error.download_http", host=host, status=status, file=target.name) from None
    except requests.exceptions.RequestException:  # no network, refused, timed out, cut off
        raise LabError("error.download_offline", host=host) from None
    except ValueError:  # pooch: the downloaded file's hash does not match (the temporary file is gone)
        # A file still at the target is one pooch found damaged and meant to replace: it must not stay either.
        target.unlink(missing_ok=True)
        raise LabError("error.download_checksum", file=target.name) from None
    except OSError as e:  # after RequestException, which is an OSError too: the disk, not the network
        raise LabError("error.download_write", folder=str(target.parent), reason=e.strerror or e) from None


@contextlib.contextmanager
def _quiet_pooch():
    """pooch logs every download to stderr; our callers report progress themselves."""
    import pooch

    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)
