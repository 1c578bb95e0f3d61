"""Downloading and reading the full datasets against a real HTTP server on 127.0.0.1, serving real IDX files
(bundled digits written with the IDX writer), with hashes computed for the files it serves."""
import gzip
import hashlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from resnet_viz import cli
from resnet_viz.data import arrays as data
from resnet_viz.data.download import (
    FILES,
    SOURCES,
    download_bytes,
    fetch,
    local_files,
)
from resnet_viz.data.idx import parse_idx, read_idx, write_idx
from resnet_viz.i18n import LabError

N_TRAIN, N_TEST = 1000, 200  # enough for several 64 KiB chunks of train images


def _idx_files(folder) -> dict[str, bytes]:
    """The four IDX .gz files of a small real dataset: the bundled subset's first digits."""
    d = data.bundled_mnist()
    arrays = (d.train_images[:N_TRAIN], d.train_labels[:N_TRAIN], d.test_images[:N_TEST], d.test_labels[:N_TEST])
    folder.mkdir(parents=True, exist_ok=True)
    for file, a in zip(FILES, arrays):
        write_idx(folder / file, a)
    return {file: (folder / file).read_bytes() for file in FILES}


class Mirror:
    """What the server serves (path -> bytes) and every path it was asked for."""

    def __init__(self, files: dict[str, bytes]):
        self.original = {f"/mnist/{k}": v for k, v in files.items()}
        self.files = dict(self.original)
        self.requests: list[str] = []
        self.url = ""

    def registry(self):
        return {k: ("md5:" + hashlib.md5(v).hexdigest(), len(v)) for k, v in
                ((p.rsplit("/", 1)[1], b) for p, b in self.original.items())}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    mirror = Mirror(_idx_files(tmp_path_factory.mktemp("served")))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            mirror.requests.append(self.path)
            body = mirror.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    mirror.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield mirror
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def mirror(server, tmp_path, monkeypatch):
    """The server, reset, with this test's own empty cache folder."""
    server.files, server.requests = dict(server.original), []
    monkeypatch.setenv("RESNET_LAB_DATA_URL", server.url)
    monkeypatch.setenv("RESNET_LAB_CACHE", str(tmp_path / "cache"))
    return server


def _key(excinfo) -> str:
    return excinfo.value.key


# ---- downloading ----------------------------------------------------------------------------------------

def test_fetch_downloads_checks_and_reports_progress(mirror, tmp_path):
    assert not data.available("mnist")
    calls = []
    paths = fetch("mnist", lambda done, total: calls.append((done, total)), registry=mirror.registry())
    total = sum(size for _, size in mirror.registry().values())
    assert calls[-1] == (total, total)
    assert all(t == total for _, t in calls) and [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert len({d for d, _ in calls}) > len(FILES)  # progress within files, not only between them
    assert sorted(mirror.requests) == sorted(f"/mnist/{f}" for f in FILES)
    assert all(p.parent == tmp_path / "cache" / "mnist" and p.is_file() for p in paths.values())
    assert data.available("mnist")
    d, bundled = data.digits("mnist"), data.bundled_mnist()
    assert d.train_images.shape == (N_TRAIN, 28, 28) and d.test_images.shape == (N_TEST, 28, 28)
    assert np.array_equal(d.train_images, bundled.train_images[:N_TRAIN])
    assert np.array_equal(d.test_labels, bundled.test_labels[:N_TEST])
    assert d.stats == data.MNIST_STATS and d.class_names("en") == [str(i) for i in range(10)]


def test_second_fetch_uses_the_cache(mirror):
    fetch("mnist", registry=mirror.registry())
    asked = len(mirror.requests)
    calls = []
    fetch("mnist", lambda done, total: calls.append((done, total)), registry=mirror.registry())
    assert len(mirror.requests) == asked
    assert calls[-1][0] == calls[-1][1]  # a UI's bar still ends full


def test_corrupted_download_is_rejected_and_not_kept(mirror, tmp_path):
    bad = bytearray(mirror.files["/mnist/train-labels-idx1-ubyte.gz"])
    bad[-5] ^= 0xFF
    mirror.files["/mnist/train-labels-idx1-ubyte.gz"] = bytes(bad)
    with pytest.raises(LabError) as e:
        fetch("mnist", registry=mirror.registry())
    assert _key(e) == "error.download_checksum" and "train-labels-idx1-ubyte.gz" in str(e.value)
    folder = tmp_path / "cache" / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == ["train-images-idx3-ubyte.gz"]  # no temporary file
    assert not data.available("mnist")


def test_damaged_cached_file_is_reported_then_downloaded_again(mirror, tmp_path):
    fetch("mnist", registry=mirror.registry())
    cached = tmp_path / "cache" / "mnist" / "train-images-idx3-ubyte.gz"
    cached.write_bytes(cached.read_bytes()[:5000])  # cut short, as by a full disk
    with pytest.raises(LabError) as e:
        data.digits("mnist")  # loading never downloads: it says what is wrong
    assert _key(e) == "error.idx_gzip"
    asked = len(mirror.requests)
    fetch("mnist", registry=mirror.registry())
    assert mirror.requests[asked:] == ["/mnist/train-images-idx3-ubyte.gz"]
    assert data.digits("mnist").train_images.shape == (N_TRAIN, 28, 28)


def test_corrupted_replacement_of_a_damaged_cached_file_leaves_nothing(mirror, tmp_path):
    fetch("mnist", registry=mirror.registry())
    cached = tmp_path / "cache" / "mnist" / "t10k-labels-idx1-ubyte.gz"
    cached.write_bytes(b"garbage")
    mirror.files["/mnist/t10k-labels-idx1-ubyte.gz"] = b"also garbage"
    with pytest.raises(LabError) as e:
        fetch("mnist", registry=mirror.registry())
    assert _key(e) == "error.download_checksum" and not cached.exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_is_the_offline_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RESNET_LAB_DATA_URL", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("RESNET_LAB_CACHE", str(tmp_path))
    with pytest.raises(LabError) as e:
        fetch("mnist")
    assert _key(e) == "error.download_offline" and "bundled 5k subset" in str(e.value)
    assert cli.main(["download", "mnist"]) == 1
    err = capsys.readouterr().err
    assert "No connection to 127.0.0.1" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_missing_file_on_the_server_is_the_http_error(mirror):
    del mirror.files["/mnist/t10k-images-idx3-ubyte.gz"]
    with pytest.raises(LabError) as e:
        fetch("mnist", registry=mirror.registry())
    assert _key(e) == "error.download_http" and "404" in str(e.value)


def test_official_registry_sizes_and_names():
    assert download_bytes("mnist") == 11594722 and download_bytes("fashion-mnist") == 30878645
    assert all(set(s.registry) == set(FILES) for s in SOURCES.values())
    assert all(h.startswith("md5:") and len(h) == 36 for s in SOURCES.values() for h, _ in s.registry.values())
    assert cli.DATASET_NAMES == list(data.DATASETS)  # the CLI's copy, kept without importing torch
    assert [d.name for d in data.datasets()] == ["mnist-5k", "mnist", "fashion-mnist"]
    assert data.info("fashion-mnist").download_bytes == 30878645 and data.info("mnist-5k").download_bytes == 0


# ---- loading without downloading -----------------------------------------------------------------------

def test_not_downloaded_is_a_lab_error_and_unknown_names_too(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_LAB_CACHE", str(tmp_path))
    assert local_files("mnist") is None and not data.available("mnist")
    with pytest.raises(LabError) as e:
        data.digits("mnist")
    assert _key(e) == "error.dataset_not_downloaded" and "12 MB" in str(e.value)
    with pytest.raises(LabError) as e:
        data.available("cifar-10")
    assert _key(e) == "error.dataset_unknown"


def test_local_folder_is_used_and_validated(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "fashion"
    _idx_files(folder)
    monkeypatch.setenv("RESNET_LAB_FASHION_DIR", str(folder))
    monkeypatch.setenv("RESNET_LAB_CACHE", str(tmp_path / "cache"))
    assert local_files("fashion-mnist") == {f: folder / f for f in FILES}
    assert cli.main(["download", "fashion-mnist"]) == 0 and "already on this machine" in capsys.readouterr().err
    d = data.digits("fashion-mnist")
    assert d.stats == data.FASHION_STATS and d.class_names("en")[0] == "T-shirt/top"
    assert d.class_names("zh")[9] == "短靴" and d.title_key == "dataset.fashion-mnist"
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", data.bundled_mnist().test_labels[:N_TEST - 1])
    with pytest.raises(LabError) as e:
        data.digits("fashion-mnist")
    assert _key(e) == "error.idx_count"
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x09" + bytes(100)))
    with pytest.raises(LabError) as e:
        data.digits("fashion-mnist")
    assert _key(e) == "error.idx_magic"


# ---- the IDX format ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["a-idx3-ubyte", "a-idx3-ubyte.gz"])
def test_idx_round_trip(tmp_path, name):
    images = data.bundled_mnist().test_images[:7]
    write_idx(tmp_path / name, images)
    raw = (tmp_path / name).read_bytes()
    assert raw[:2] == b"\x1f\x8b" if name.endswith(".gz") else raw[:4] == b"\x00\x00\x08\x03"
    back = read_idx(tmp_path / name, ndim=3)
    assert back.dtype == np.uint8 and np.array_equal(back, images) and not back.flags.writeable
    labels = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "l.gz", labels)
    assert np.array_equal(read_idx(tmp_path / "l.gz", ndim=1), labels)


def test_idx_header_is_big_endian():
    raw = b"\x00\x00\x08\x03" + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + (4).to_bytes(4, "big")
    assert parse_idx(raw + bytes(range(24))).shape == (2, 3, 4)


@pytest.mark.parametrize("raw, key", [
    (b"", "error.idx_magic"),
    (b"\x08\x03\x00\x00" + bytes(8), "error.idx_magic"),  # little-endian magic
    (b"\x00\x00\x0d\x01" + (4).to_bytes(4, "big") + bytes(16), "error.idx_magic"),  # float data
    (b"\x00\x00\x08\x01\x00\x0a", "error.idx_size"),  # its dimension cut short
    (b"\x00\x00\x08\x01" + (10).to_bytes(4, "big") + bytes(9), "error.idx_size"),  # one value short
    (b"\x00\x00\x08\x01" + (10).to_bytes(4, "big") + bytes(11), "error.idx_size"),  # one too many
])
def test_invalid_idx_is_a_lab_error(raw, key):
    with pytest.raises(LabError) as e:
        parse_idx(raw, "x", ndim=1)
    assert _key(e) == key


def test_truncated_or_damaged_gzip_is_a_lab_error(tmp_path):
    write_idx(tmp_path / "x.gz", data.bundled_mnist().test_images[:50])
    good = (tmp_path / "x.gz").read_bytes()
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x01
    for damaged in (good[:len(good) // 2], good[:-3], bytes(flipped)):
        (tmp_path / "x.gz").write_bytes(damaged)
        with pytest.raises(LabError) as e:
            read_idx(tmp_path / "x.gz")
        assert _key(e) in ("error.idx_gzip", "error.idx_size")
