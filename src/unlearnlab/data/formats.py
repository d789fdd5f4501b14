"""Standard image datasets read from their official on-disk formats.

Registered names: ``mnist``, ``fashion-mnist``, ``cifar10``, ``cifar100``, ``svhn``. Each reads the files
the dataset's authors publish, unchanged:

* MNIST / Fashion-MNIST: IDX files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally gzipped (``NAME.gz``).
* CIFAR-10: ``cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin`` (binary version) or
  ``cifar-10-batches-py/{data_batch_1..5,test_batch}`` (python version: pickles, read with a restricted
  unpickler that only admits the NumPy array reconstruction globals).
* CIFAR-100: ``cifar-100-binary/{train,test}.bin`` or ``cifar-100-python/{train,test}``; fine labels.
* SVHN (cropped digits): ``train_32x32.mat``, ``test_32x32.mat`` (MATLAB v5), label 10 mapped to digit 0.

Where files are looked for: ``root`` itself and its conventional subfolders (``MNIST/raw``,
``FashionMNIST/raw``, ``cifar-10-batches-bin`` ...). Without ``root``: ``$UNLEARNLAB_DATA`` or
``~/.cache/unlearnlab/data`` (and their subfolders), then known system locations (Debian's
``dataset-fashion-mnist`` package installs Fashion-MNIST in :data:`DEBIAN_FASHION_MNIST_DIR`).
``download=True`` fetches the official archives (MD5-checked) into that data root when the files are absent;
``download=False`` never touches the network.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unlearnlab.data.datasets import ImageDataset, register_dataset
from unlearnlab.errors import UnlearnlabError

DATA_ENV = "UNLEARNLAB_DATA"
DEFAULT_DATA_DIR = Path("~/.cache/unlearnlab/data")
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # `dpkg -L dataset-fashion-mnist`

IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
CIFAR_PIXELS = 3 * 32 * 32


class DatasetNotFoundError(UnlearnlabError):
    """The files of a dataset are not where they were looked for (or could not be downloaded)."""


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


def _read_idx_split(paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
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


def _read_cifar_split(
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


def _read_svhn_split(paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
    return read_svhn_mat(paths[0])


# ------------------------------------------------------------------------------------ sources and layouts

SplitReader = Callable[[Sequence[Path]], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Layout:
    """One on-disk version of a dataset: its file names, conventional subfolders, and split reader."""

    version: str
    subdirs: tuple[str, ...]
    train: tuple[str, ...]
    test: tuple[str, ...]
    read: SplitReader
    gzip_ok: bool = False

    def find(self, directory: Path) -> tuple[list[Path], list[Path]] | None:
        """The train and test paths when all files are in ``directory``, else None."""
        names = self.train + self.test
        paths = [p for name in names if (p := self._match(directory, name)) is not None]
        if len(paths) != len(names):
            return None
        return paths[: len(self.train)], paths[len(self.train) :]

    def missing(self, directory: Path) -> list[str]:
        return [n for n in self.train + self.test if self._match(directory, n) is None]

    def pattern(self, name: str) -> str:
        return f"{name}[.gz]" if self.gzip_ok else name

    def _match(self, directory: Path, name: str) -> Path | None:
        for candidate in (name, f"{name}.gz") if self.gzip_ok else (name,):
            if (directory / candidate).is_file():
                return directory / candidate
        return None


@dataclass(frozen=True)
class Resource:
    """A file to download: one name, its MD5, mirror URLs; ``.tar.gz`` archives are extracted."""

    filename: str
    md5: str
    urls: tuple[str, ...]


@dataclass(frozen=True)
class Source:
    """A standard dataset: where its files may be, how to read them, and how to fetch them."""

    name: str
    title: str
    layouts: tuple[Layout, ...]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: bool
    resources: tuple[Resource, ...]
    download_subdir: str = ""
    system_dirs: tuple[Path, ...] = ()


def _idx_source(
    name: str, title: str, folder: str, mean: float, std: float, mirrors: Sequence[str], md5s: Sequence[str]
) -> Source:
    train = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
    test = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    layout = Layout("IDX", (f"{folder}/raw", folder, name), train, test, _read_idx_split, gzip_ok=True)
    resources = tuple(
        Resource(f"{f}.gz", md5, tuple(m + f"{f}.gz" for m in mirrors)) for f, md5 in zip(train + test, md5s)
    )
    system = (DEBIAN_FASHION_MNIST_DIR,) if name == "fashion-mnist" else ()
    return Source(name, title, (layout,), 10, (mean,), (std,), False, resources, f"{folder}/raw", system)


def _cifar_source(classes: int) -> Source:
    """CIFAR-10 or CIFAR-100, binary and python versions read by one mechanism with per-variant options."""
    if classes == 10:
        stem, bin_dir, py_dir = "cifar-10", "cifar-10-batches-bin", "cifar-10-batches-py"
        train, test = tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",)
        label_bytes, label_pos, label_key = 1, 0, b"labels"
        mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)  # SalUn's constants
        md5 = "c58f30108f718f92721af3b95e74349a"
    else:
        stem, bin_dir, py_dir = "cifar-100", "cifar-100-binary", "cifar-100-python"
        train, test = ("train",), ("test",)
        label_bytes, label_pos, label_key = 2, 1, b"fine_labels"  # records: coarse byte, fine byte
        mean, std = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
        md5 = "eb9058c3a382ffc7106e4002c42a8d85"
    binary = partial(read_cifar_binary, label_bytes=label_bytes, label_pos=label_pos)
    python = partial(read_cifar_pickle, label_key=label_key)
    layouts = (
        Layout(
            "binary",
            (bin_dir,),
            tuple(f"{f}.bin" for f in train),
            tuple(f"{f}.bin" for f in test),
            partial(_read_cifar_split, read_batch=binary),
        ),
        Layout("python", (py_dir,), train, test, partial(_read_cifar_split, read_batch=python)),
    )
    archive = f"{stem}-python.tar.gz"
    resources = (Resource(archive, md5, (f"https://www.cs.toronto.edu/~kriz/{archive}",)),)
    return Source(f"cifar{classes}", f"CIFAR-{classes}", layouts, classes, mean, std, True, resources)


def _svhn_source() -> Source:
    base = "http://ufldl.stanford.edu/housenumbers/"
    layout = Layout("MATLAB", ("svhn", "SVHN"), ("train_32x32.mat",), ("test_32x32.mat",), _read_svhn_split)
    resources = (
        Resource("train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373", (base + "train_32x32.mat",)),
        Resource("test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3", (base + "test_32x32.mat",)),
    )
    return Source(
        "svhn", "SVHN", (layout,), 10, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), False, resources
    )


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        _idx_source(
            "mnist",
            "MNIST",
            "MNIST",
            0.1307,
            0.3081,
            ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
            (
                "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                "d53e105ee54ea40749a09fcbcd1e9432",
                "9fb629c4189551a2d022fa330f9573f3",
                "ec29112dd5afa0611ce80d1b7f02629c",
            ),
        ),
        _idx_source(
            "fashion-mnist",
            "Fashion-MNIST",
            "FashionMNIST",
            0.2860,
            0.3530,
            ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
            (
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "25c81989df183df01b3e8a0aad5dffbe",
                "bef4ecab320f06d8554ea6380940ec79",
                "bb300cfdad3c16e7a12a480ee83cd310",
            ),
        ),
        _cifar_source(10),
        _cifar_source(100),
        _svhn_source(),
    )
}


# ----------------------------------------------------------------------------------------------- locating


def data_root() -> Path:
    """The default data folder: ``$UNLEARNLAB_DATA``, else ``~/.cache/unlearnlab/data``."""
    return Path(os.environ.get(DATA_ENV) or DEFAULT_DATA_DIR).expanduser()


def _bases(source: Source, root: Path | None) -> list[Path]:
    return [Path(root).expanduser()] if root is not None else [data_root(), *source.system_dirs]


def _search_dirs(source: Source, root: Path | None) -> list[tuple[Path, Layout]]:
    """Every (folder, layout) pair to try, in order: each base itself, then its conventional subfolders."""
    pairs = []
    for base in _bases(source, root):
        for layout in source.layouts:
            pairs += [(base / sub if sub else base, layout) for sub in ("", *layout.subdirs)]
    return pairs


def locate(source: Source, root: Path | None) -> tuple[Layout, list[Path], list[Path]] | None:
    """The first complete set of files for ``source``: its layout, train paths and test paths."""
    for directory, layout in _search_dirs(source, root):
        found = layout.find(directory)
        if found is not None:
            return layout, *found
    return None


def _expected_paths(source: Source, base: Path) -> list[str]:
    lines = []
    for layout in source.layouts:
        folder = base / layout.subdirs[0] if layout.subdirs else base
        names = ", ".join(layout.pattern(n) for n in layout.train + layout.test)
        lines.append(f"  {layout.version} version: {folder}/{{{names}}}")
    return lines


def _not_found(source: Source, root: Path | None, reason: str) -> DatasetNotFoundError:
    """The error naming every folder searched, the expected paths, and the fixes."""
    searched = list(dict.fromkeys(str(d) for d, _ in _search_dirs(source, root)))
    partial_sets = [
        f"  {d}: {layout.version} files present but missing {', '.join(layout.missing(d))}"
        for d, layout in _search_dirs(source, root)
        if d.is_dir() and 0 < len(layout.missing(d)) < len(layout.train + layout.test)
    ]
    base = _bases(source, root)[0]
    return DatasetNotFoundError(
        "\n".join(
            [
                f"{source.title} files not found ({reason}). Searched:",
                *(f"  {d}" for d in searched),
                *(["Incomplete sets:", *partial_sets] if partial_sets else []),
                "Expected one complete set, e.g.:",
                *_expected_paths(source, base),
                (
                    f"Fix: point to the folder holding these files, or its parent (command line: --root FOLDER; "
                    f"Python: root=FOLDER), or set {DATA_ENV}=<that folder> (default {DEFAULT_DATA_DIR}). To "
                    "fetch the official files once, on a machine with internet: python -c \"import unlearnlab "
                    f"as ul; ul.load_dataset('{source.name}', download=True)\" (the command line never "
                    "downloads)."
                ),
            ]
        )
    )


# ------------------------------------------------------------------------------------------------ download


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, target: Path, md5: str) -> None:
    """Stream ``url`` into ``target`` through a ``.part`` file; raise on a network error or wrong MD5."""
    part = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, part.open("wb") as out:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                out.write(chunk)
        got = _md5(part)
        if got != md5:
            raise OSError(f"MD5 mismatch: got {got}, expected {md5}")
        part.replace(target)
    finally:
        part.unlink(missing_ok=True)


def _extract(archive: Path, dest: Path) -> None:
    """Unpack a ``.tar.gz`` into ``dest``, refusing members that would land outside it."""
    with tarfile.open(archive, "r:gz") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
            return
        for member in tar.getmembers():  # Python without extraction filters
            target = (dest / member.name).resolve()
            if not (member.isfile() or member.isdir()) or dest.resolve() not in (target, *target.parents):
                raise DataFormatError(
                    f"{archive}: unsafe archive member {member.name!r}; refusing to extract."
                )
        tar.extractall(dest)


def download(source: Source, root: Path | None) -> None:
    """Fetch ``source``'s official files (MD5-checked) into ``root`` (or the default data folder)."""
    dest = (Path(root).expanduser() if root is not None else data_root()) / source.download_subdir
    dest.mkdir(parents=True, exist_ok=True)
    for res in source.resources:
        target = dest / res.filename
        if not (target.is_file() and _md5(target) == res.md5):
            errors = []
            for url in res.urls:
                try:
                    _fetch(url, target, res.md5)
                    break
                except (urllib.error.URLError, OSError) as exc:
                    errors.append(f"{url}: {exc}")
            else:
                raise _not_found(
                    source,
                    root,
                    f"download of {res.filename} failed: {'; '.join(errors)} — if this machine "
                    "is offline, fetch the files elsewhere and copy them to one of the folders below",
                )
        if res.filename.endswith(".tar.gz"):
            _extract(target, dest)


# ------------------------------------------------------------------------------------------------- loading


def _to_float(images: np.ndarray) -> torch.Tensor:
    """uint8 → float32 in [0, 1], one vectorised op and one allocation."""
    return torch.from_numpy(np.divide(images, np.float32(255), dtype=np.float32))


def _check_labels(source: Source, labels: np.ndarray, split: str) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= source.num_classes):
        raise DataFormatError(
            f"{source.title} {split} labels span {labels.min()}..{labels.max()}, outside 0..{source.num_classes - 1}."
        )


def load_standard(name: str, root: str | Path | None = None, download_missing: bool = False) -> ImageDataset:
    """Load the standard dataset ``name`` from disk (no memoisation; see :func:`load_dataset` for that)."""
    source = SOURCES[name]
    root = None if root is None else Path(root)
    found = locate(source, root)
    if found is None:
        if not download_missing:
            raise _not_found(source, root, "not downloaded: downloads are off")
        download(source, root)
        found = locate(source, root)
        if found is None:
            raise _not_found(source, root, "the download finished but the expected files are not there")
    layout, train_paths, test_paths = found
    x_train, y_train = layout.read(train_paths)
    x_test, y_test = layout.read(test_paths)
    _check_labels(source, y_train, "train")
    _check_labels(source, y_test, "test")
    return ImageDataset(
        name=source.name,
        x_train=_to_float(x_train),
        y_train=torch.from_numpy(y_train),
        x_test=_to_float(x_test),
        y_test=torch.from_numpy(y_test),
        num_classes=source.num_classes,
        mean=source.mean,
        std=source.std,
        augment=source.augment,
        train_index=np.arange(len(y_train)),
        test_index=np.arange(len(y_test)),
    )


def _register(source: Source) -> None:
    def loader(root: Path | None = None, download: bool = False) -> ImageDataset:
        return load_standard(source.name, root, download)

    loader.__name__ = loader.__qualname__ = f"load_{source.name.replace('-', '_')}"
    loader.__doc__ = (
        f"{source.title} from its official files ({', '.join(lay.version for lay in source.layouts)})."
    )
    register_dataset(source.name)(loader)


for _source in SOURCES.values():
    _register(_source)
