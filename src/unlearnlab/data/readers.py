"""Readers of the official on-disk files of the standard image datasets (docs: ``data/formats.py``'s docstring
lists the files).

* IDX (MNIST, Fashion-MNIST): a big-endian header (magic number 2051 for images / 2049 for labels, then one
  32-bit size per dimension) followed by unsigned bytes; files may be gzipped.
* CIFAR binary: records of ``label_bytes`` label bytes (CIFAR-100: coarse then fine) followed by 3×32×32 pixels,
  channel-major.
* CIFAR python: pickles read with a restricted unpickler that admits only NumPy's array-reconstruction globals,
  so a crafted file cannot run code.
* SVHN: MATLAB v5 ``X`` (32×32×3×N) and ``y`` (label 10 stands for the digit 0).

Every reader returns ``(images uint8 [N, C, H, W], labels int64 [N])`` and raises :class:`DataFormatError` naming
the file and what is wrong with it.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unlearnlab.errors import UnlearnlabError

IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
CIFAR_PIXELS = 3 * 32 * 32


class DataFormatError(UnlearnlabError):
    """A dataset file exists but is not in the expected format (wrong magic number, truncated, ...)."""


# --------------------------------------------------------------------------------------------------- IDX


def _read_bytes(path: Path) -> bytes:
    """A file's bytes, gunzipped when it starts with the gzip magic (whatever its name)."""
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:
        raise DataFormatError(
            f"{path}: corrupt or truncated gzip data ({exc}); re-download the file."
        ) from exc


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Read one IDX file (the MNIST format) as a uint8 array.

    Layout: a big-endian uint32 magic ``0x0000TTDD`` (``TT = 0x08``: unsigned bytes, ``DD``: number of
    dimensions; 2051 for image files, 2049 for label files), ``DD`` big-endian uint32 sizes, then the
    row-major payload. The file may be gzipped.
    """
    raw = _read_bytes(path)
    kind = {IDX_IMAGES_MAGIC: "an IDX image file", IDX_LABELS_MAGIC: "an IDX label file"}.get(magic, "IDX")
    found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if found != magic:
        got = "fewer than 4 bytes" if found is None else f"{found} (0x{found:08x})"
        raise DataFormatError(
            f"{path}: bad IDX magic number {got}; expected {magic} (0x{magic:08x}) for {kind}. "
            "The file is not in the MNIST IDX format (wrong file, or an HTML error page); re-download it."
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFormatError(f"{path}: truncated IDX header ({len(raw)} bytes); re-download the file.")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "has trailing bytes"
        raise DataFormatError(
            f"{path}: IDX header declares shape {tuple(dims)} ({expected} bytes with the header) but the "
            f"(decompressed) file holds {len(raw)} bytes: it is {problem}; re-download it."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def read_idx_split(paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
    """One split from ``(images, labels)`` IDX files: uint8 ``[N, 1, H, W]`` and int64 labels."""
    images = read_idx(paths[0], IDX_IMAGES_MAGIC)
    labels = read_idx(paths[1], IDX_LABELS_MAGIC)
    if len(images) != len(labels):
        raise DataFormatError(
            f"{paths[0]} holds {len(images)} images but {paths[1]} holds {len(labels)} labels; "
            "the two files do not belong together."
        )
    return images[:, None], labels.astype(np.int64)


# ------------------------------------------------------------------------------------------------- CIFAR


def read_cifar_binary(path: Path, label_bytes: int, label_pos: int) -> tuple[np.ndarray, np.ndarray]:
    """Read a CIFAR binary batch: pixel rows uint8 ``[N, 3072]`` and int64 labels.

    Each record is ``label_bytes`` label bytes (CIFAR-10: the label; CIFAR-100: coarse then fine label)
    followed by 3072 pixel bytes: the 1024 red, then green, then blue values of a 32×32 image, row-major.
    ``label_pos`` picks the label byte to return.
    """
    raw = np.fromfile(path, dtype=np.uint8)
    record = label_bytes + CIFAR_PIXELS
    if raw.size == 0 or raw.size % record:
        raise DataFormatError(
            f"{path}: {raw.size} bytes is not a whole number of {record}-byte CIFAR records "
            f"({label_bytes} label byte(s) + {CIFAR_PIXELS} pixels); the file is truncated or not a CIFAR "
            "binary batch. Re-download it."
        )
    records = raw.reshape(-1, record)
    return records[:, label_bytes:], records[:, label_pos].astype(np.int64)


def _numpy_reconstruct() -> Callable[..., np.ndarray]:
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # NumPy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for the CIFAR python batches: admits only what a pickled NumPy array needs.

    Dicts, lists, strings and numbers need no globals; an ``ndarray`` needs ``_reconstruct`` (named
    ``numpy.core.multiarray`` by the official Python 2 files, ``numpy._core.multiarray`` by NumPy 2),
    ``numpy.ndarray`` and ``numpy.dtype``. Any other global is refused with :class:`DataFormatError`, so a
    crafted file cannot run code.
    """

    def __init__(self, file: io.BufferedIOBase, source: Path) -> None:
        super().__init__(file, encoding="bytes")
        self.source = source
        reconstruct = _numpy_reconstruct()
        self._allowed: dict[tuple[str, str], Any] = {
            ("numpy.core.multiarray", "_reconstruct"): reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): reconstruct,
            ("numpy", "ndarray"): np.ndarray,
            ("numpy", "dtype"): np.dtype,
        }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise DataFormatError(
                f"{self.source}: refusing to unpickle the global {module}.{name}: a CIFAR python batch "
                "only holds NumPy arrays, lists and dicts. The file is not an official CIFAR batch; "
                "re-download it or use the binary version."
            ) from None


def read_cifar_pickle(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Read a CIFAR python batch: pixel rows uint8 ``[N, 3072]`` and int64 labels.

    The file is a pickled dict (written by Python 2, read with ``encoding="bytes"``) whose ``b"data"`` is a
    uint8 array ``[N, 3072]`` in the binary layout and whose ``label_key`` (``b"labels"`` for CIFAR-10,
    ``b"fine_labels"`` for CIFAR-100) is a list of ``N`` ints.
    """
    with path.open("rb") as fh:
        try:
            batch = RestrictedUnpickler(fh, path).load()
        except DataFormatError:
            raise
        except Exception as exc:
            raise DataFormatError(f"{path}: not a readable CIFAR python batch ({exc!r}).") from exc
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise DataFormatError(f"{path}: expected a dict with keys b'data' and {label_key!r}; got {keys}.")
    data, labels = batch[b"data"], np.asarray(batch[label_key], dtype=np.int64)
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.shape != (len(labels), CIFAR_PIXELS)
    ):
        shape = getattr(data, "shape", None)
        raise DataFormatError(
            f"{path}: b'data' must be a uint8 array [{len(labels)}, {CIFAR_PIXELS}] (one row per label); "
            f"got {type(data).__name__} {shape}."
        )
    return data, labels


def read_cifar_split(
    paths: Sequence[Path], read_batch: Callable[[Path], tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate CIFAR batches (either version) into uint8 ``[N, 3, 32, 32]`` and int64 labels."""
    rows, labels = zip(*(read_batch(p) for p in paths))
    return np.concatenate(rows).reshape(-1, 3, 32, 32), np.concatenate(labels)


# -------------------------------------------------------------------------------------------------- SVHN


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an SVHN cropped-digits file: uint8 ``[N, 3, 32, 32]`` and int64 labels in 0..9.

    The MATLAB v5 file holds ``X`` uint8 ``[32, 32, 3, N]`` (height, width, channel, image) and ``y``
    ``[N, 1]`` with labels 1..10, where 10 stands for the digit 0.
    """
    from scipy.io import loadmat

    try:
        mat = loadmat(path, variable_names=("X", "y"))
    except Exception as exc:
        raise DataFormatError(f"{path}: not a readable MATLAB .mat file ({exc!r}); re-download it.") from exc
    x, y = mat.get("X"), mat.get("y")
    if x is None or y is None:
        raise DataFormatError(f"{path}: expected variables 'X' and 'y'; found {sorted(mat)}.")
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.dtype != np.uint8 or y.size != x.shape[3]:
        raise DataFormatError(
            f"{path}: expected X uint8 [32, 32, 3, N] and N labels; got X {x.dtype} {x.shape}, y {y.shape}."
        )
    labels = y.reshape(-1).astype(np.int64)
    labels[labels == 10] = 0
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), labels


def read_svhn_split(paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
    return read_svhn_mat(paths[0])
