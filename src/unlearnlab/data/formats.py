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

import hashlib
import os
import tarfile
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from unlearnlab.data.datasets import ImageDataset, register_dataset
from unlearnlab.data.readers import (
    DataFormatError,
    read_cifar_binary,
    read_cifar_pickle,
    read_cifar_split,
    read_idx_split,
    read_svhn_split,
)
from unlearnlab.errors import UnlearnlabError

DATA_ENV = "UNLEARNLAB_DATA"
DEFAULT_DATA_DIR = Path("~/.cache/unlearnlab/data")
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # `dpkg -L dataset-fashion-mnist`


class DatasetNotFoundError(UnlearnlabError):
    """The files of a dataset are not where they were looked for (or could not be downloaded)."""


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
    layout = Layout("IDX", (f"{folder}/raw", folder, name), train, test, read_idx_split, gzip_ok=True)
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
            partial(read_cifar_split, read_batch=binary),
        ),
        Layout("python", (py_dir,), train, test, partial(read_cifar_split, read_batch=python)),
    )
    archive = f"{stem}-python.tar.gz"
    resources = (Resource(archive, md5, (f"https://www.cs.toronto.edu/~kriz/{archive}",)),)
    return Source(f"cifar{classes}", f"CIFAR-{classes}", layouts, classes, mean, std, True, resources)


def _svhn_source() -> Source:
    base = "http://ufldl.stanford.edu/housenumbers/"
    layout = Layout("MATLAB", ("svhn", "SVHN"), ("train_32x32.mat",), ("test_32x32.mat",), read_svhn_split)
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
