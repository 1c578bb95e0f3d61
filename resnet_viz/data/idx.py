"""The IDX file format of MNIST and Fashion-MNIST: read (validated) and write, gzipped or not.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions), one big-endian
uint32 per dimension, then the values. Only uint8 data (type code 0x08) occurs in these datasets.
"""
import gzip
import zlib
from pathlib import Path

import numpy as np

from ..i18n import LabError

UINT8 = 0x08
GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: Path | str, ndim: int | None = None) -> np.ndarray:
    """The uint8 array in an IDX file (read-only, no copy of the file's bytes). A damaged or cut-short file
    raises LabError, never a raw gzip/zlib/numpy error: these files come off the network."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == GZIP_MAGIC:  # by content, not by name: a mirror may serve either
            raw = gzip.decompress(raw)  # checks the CRC32 too, so a flipped bit is caught here
    except (EOFError, gzip.BadGzipFile, zlib.error):
        raise LabError("error.idx_gzip", file=path.name) from None
    return parse_idx(raw, path.name, ndim)


def parse_idx(raw: bytes, name: str = "?", ndim: int | None = None) -> np.ndarray:
    if len(raw) < 4 or raw[0] or raw[1] or raw[2] != UINT8 or not 1 <= raw[3] <= 4 \
            or (ndim is not None and raw[3] != ndim):
        raise LabError("error.idx_magic", file=name, magic=f"0x{raw[:4].hex() or '0'}")
    dims_end = 4 + 4 * raw[3]
    if len(raw) < dims_end:
        raise LabError("error.idx_size", file=name, expected=dims_end, actual=len(raw))
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", raw[3], 4))
    expected = int(np.prod(shape, dtype=np.int64))
    if len(raw) - dims_end != expected:
        raise LabError("error.idx_size", file=name, expected=expected, actual=len(raw) - dims_end)
    return np.frombuffer(raw, np.uint8, expected, dims_end).reshape(shape)


def write_idx(path: Path | str, array: np.ndarray) -> None:
    """Write a uint8 array as IDX, gzipped when the name ends in .gz (mtime 0: the same bytes every time)."""
    a = np.ascontiguousarray(array, np.uint8)
    data = bytes([0, 0, UINT8, a.ndim]) + np.asarray(a.shape, ">u4").tobytes() + a.tobytes()
    if str(path).endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    Path(path).write_bytes(data)
