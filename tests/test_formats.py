"""Standard-dataset loaders on tiny files written in the exact official on-disk formats."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import socket
import struct
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from unlearnlab.data import formats as F
from unlearnlab.data import list_datasets, load_dataset, readers

N_TRAIN, N_TEST = 20, 10
RNG = np.random.RandomState(0)

# ------------------------------------------------------------------------------------------ file writers


def _idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """IDX: big-endian magic, big-endian uint32 sizes, uint8 payload."""
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


def _write(path: Path, data: bytes, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def write_idx_set(folder: Path, gz: bool = False) -> dict[str, np.ndarray]:
    """The four MNIST IDX files (20 train / 10 test 28×28 images) in ``folder``."""
    arrays = {
        "train-images-idx3-ubyte": RNG.randint(0, 256, (N_TRAIN, 28, 28)).astype(np.uint8),
        "train-labels-idx1-ubyte": (np.arange(N_TRAIN) * 7 % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": RNG.randint(0, 256, (N_TEST, 28, 28)).astype(np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(N_TEST) * 3 % 10).astype(np.uint8),
    }
    arrays["train-images-idx3-ubyte"][3, 5, 7] = 200  # a known pixel: image 3, row 5, column 7
    for name, arr in arrays.items():
        magic = readers.IDX_IMAGES_MAGIC if arr.ndim == 3 else readers.IDX_LABELS_MAGIC
        _write(folder / name, _idx_bytes(arr, magic), gz)
    return arrays


class _Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Protocol 2 as Python 2 wrote the CIFAR batches: every str/bytes as a byte string (BINSTRING)."""

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def _save_byte_string(self, obj: str | bytes) -> None:
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = _save_byte_string
    dispatch[bytes] = _save_byte_string


def _py2_pickle(obj: object) -> bytes:
    """Bytes shaped like the official CIFAR python files, including their ``numpy.core.multiarray`` global."""
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def _cifar_batch(n: int, classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = RNG.randint(0, 256, (n, 3072)).astype(np.uint8)
    fine = (np.arange(n) * 7 + 3) % classes
    return rows, fine, fine // 5


def write_cifar(folder: Path, classes: int, version: str, py2: bool = True) -> tuple[np.ndarray, ...]:
    """CIFAR-10/100 train and test batches in ``folder`` in the binary or python version.

    Returns ``(train_rows, train_labels, test_rows, test_labels)``, rows uint8 [N, 3072].
    """
    folder.mkdir(parents=True, exist_ok=True)
    if classes == 10:
        train_files, test_files = [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"]
    else:
        train_files, test_files = ["train"], ["test"]
    out = []
    for files, n in ((train_files, N_TRAIN), (test_files, N_TEST)):
        rows, fine, coarse = _cifar_batch(n, classes)
        for k, (r, f, c) in enumerate(
            zip(
                np.array_split(rows, len(files)),
                np.array_split(fine, len(files)),
                np.array_split(coarse, len(files)),
            )
        ):
            name = files[k]
            if version == "binary":
                labels = f[:, None] if classes == 10 else np.stack([c, f], axis=1)
                (folder / f"{name}.bin").write_bytes(np.hstack([labels.astype(np.uint8), r]).tobytes())
            else:
                key = b"labels" if classes == 10 else b"fine_labels"
                batch = {
                    b"batch_label": b"batch",
                    key: [int(v) for v in f],
                    b"data": r,
                    b"filenames": [b"img_%d.png" % i for i in range(len(f))],
                }
                if classes == 100:
                    batch[b"coarse_labels"] = [int(v) for v in c]
                (folder / name).write_bytes(_py2_pickle(batch) if py2 else pickle.dumps(batch, protocol=4))
        out += [rows, fine]
    return tuple(out)


def write_svhn(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """``train_32x32.mat`` / ``test_32x32.mat``: X uint8 [32, 32, 3, N], y [N, 1] with 10 for the digit 0."""
    folder.mkdir(parents=True, exist_ok=True)
    x = RNG.randint(0, 256, (32, 32, 3, N_TRAIN)).astype(np.uint8)
    x[4, 6, 2, 3] = 77  # image 3, channel 2 (blue), row 4, column 6
    y = (np.arange(N_TRAIN) % 10 + 1).astype(np.uint8)[:, None]  # 1..10
    scipy.io.savemat(folder / "train_32x32.mat", {"X": x, "y": y})
    scipy.io.savemat(folder / "test_32x32.mat", {"X": x[..., :N_TEST], "y": y[:N_TEST]})
    return x, y


# -------------------------------------------------------------------------------------------------- tests


def test_standard_datasets_are_registered() -> None:
    assert {"mnist", "fashion-mnist", "cifar10", "cifar100", "svhn"} <= set(list_datasets())


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("nested", [False, True])
def test_idx_loaders(tmp_path: Path, name: str, gz: bool, nested: bool) -> None:
    folder = tmp_path / ("MNIST/raw" if name == "mnist" else "FashionMNIST/raw") if nested else tmp_path
    arrays = write_idx_set(folder, gz)
    ds = F.load_standard(name, tmp_path)
    assert ds.name == name and ds.num_classes == 10 and not ds.augment
    assert ds.x_train.shape == (N_TRAIN, 1, 28, 28) and ds.x_test.shape == (N_TEST, 1, 28, 28)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert 0.0 <= float(ds.x_train.min()) and float(ds.x_train.max()) <= 1.0
    assert ds.x_train[3, 0, 5, 7].item() == pytest.approx(200 / 255)
    np.testing.assert_array_equal(
        ds.x_train.numpy()[:, 0], arrays["train-images-idx3-ubyte"] / np.float32(255)
    )
    np.testing.assert_array_equal(ds.y_train.numpy(), arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(ds.y_test.numpy(), arrays["t10k-labels-idx1-ubyte"])
    np.testing.assert_array_equal(ds.train_index, np.arange(N_TRAIN))
    np.testing.assert_array_equal(ds.test_index, np.arange(N_TEST))
    expected = {"mnist": ((0.1307,), (0.3081,)), "fashion-mnist": ((0.2860,), (0.3530,))}[name]
    assert (ds.mean, ds.std) == expected


@pytest.mark.parametrize("classes", [10, 100])
@pytest.mark.parametrize("version", ["binary", "python"])
@pytest.mark.parametrize("nested", [False, True])
def test_cifar_loaders(tmp_path: Path, classes: int, version: str, nested: bool) -> None:
    sub = {
        (10, "binary"): "cifar-10-batches-bin",
        (10, "python"): "cifar-10-batches-py",
        (100, "binary"): "cifar-100-binary",
        (100, "python"): "cifar-100-python",
    }[classes, version]
    train_rows, train_fine, test_rows, test_fine = write_cifar(
        tmp_path / sub if nested else tmp_path, classes, version
    )
    ds = F.load_standard(f"cifar{classes}", tmp_path)
    assert ds.num_classes == classes and ds.augment
    assert ds.x_train.shape == (N_TRAIN, 3, 32, 32) and ds.x_test.shape == (N_TEST, 3, 32, 32)
    assert ds.x_train.dtype == torch.float32 and ds.x_train.is_contiguous()
    # record layout: 1024 red, 1024 green, 1024 blue values, each 32×32 row-major
    assert ds.x_train[2, 1, 4, 6].item() == pytest.approx(train_rows[2, 1024 + 32 * 4 + 6] / 255)
    np.testing.assert_array_equal(ds.x_test.numpy().reshape(N_TEST, -1), test_rows / np.float32(255))
    np.testing.assert_array_equal(ds.y_train.numpy(), train_fine)  # batches in order; fine labels for 100
    np.testing.assert_array_equal(ds.y_test.numpy(), test_fine)
    if classes == 10:
        assert (ds.mean, ds.std) == ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
    else:
        assert (ds.mean, ds.std) == ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))


def test_cifar_python_pickles_from_numpy2_load_too(tmp_path: Path) -> None:
    """A batch re-saved by Python 3 / NumPy 2 (protocol 4, ``numpy._core`` global) also loads."""
    rows, fine, *_ = write_cifar(tmp_path / "cifar-100-python", 100, "python", py2=False)
    ds = F.load_standard("cifar100", tmp_path)
    np.testing.assert_array_equal(ds.y_train.numpy(), fine)
    np.testing.assert_array_equal(ds.x_train.numpy().reshape(N_TRAIN, -1), rows / np.float32(255))


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {self.marker}",)


def test_restricted_unpickler_refuses_foreign_globals(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder, 10, "python")
    marker = tmp_path / "pwned"
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": _Evil(marker), b"labels": []}, protocol=4))
    with pytest.raises(readers.DataFormatError, match=r"refusing to unpickle the global \w+\.system") as info:
        F.load_standard("cifar10", tmp_path)
    assert "data_batch_3" in str(info.value)
    assert not marker.exists()


def test_svhn_loader(tmp_path: Path) -> None:
    x, y = write_svhn(tmp_path / "svhn")
    for root in (tmp_path, tmp_path / "svhn"):
        ds = F.load_standard("svhn", root)
        assert ds.x_train.shape == (N_TRAIN, 3, 32, 32) and ds.x_test.shape == (N_TEST, 3, 32, 32)
        assert ds.x_train.is_contiguous() and not ds.augment and ds.num_classes == 10
        assert ds.x_train[3, 2, 4, 6].item() == pytest.approx(77 / 255)
        np.testing.assert_array_equal(ds.x_train.numpy(), x.transpose(3, 2, 0, 1) / np.float32(255))
        np.testing.assert_array_equal(ds.y_train.numpy(), y[:, 0] % 10)  # 10 → 0
        assert set(ds.y_train.tolist()) == set(range(10))
        assert (ds.mean, ds.std) == ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970))


def test_registry_and_env_var_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_idx_set(tmp_path / "MNIST" / "raw", gz=True)
    assert load_dataset("mnist", tmp_path).x_train.shape == (N_TRAIN, 1, 28, 28)
    monkeypatch.setenv(F.DATA_ENV, str(tmp_path))
    assert F.data_root() == tmp_path
    assert F.load_standard("mnist").y_test.shape == (N_TEST,)


# ----------------------------------------------------------------------------------------------- failures


@pytest.mark.parametrize("gz", [False, True])
def test_idx_bad_magic_number(tmp_path: Path, gz: bool) -> None:
    write_idx_set(tmp_path, gz)
    labels = np.zeros(N_TRAIN, dtype=np.uint8)
    bad = _write(tmp_path / "train-images-idx3-ubyte", _idx_bytes(labels, readers.IDX_LABELS_MAGIC), gz)
    with pytest.raises(readers.DataFormatError, match=r"bad IDX magic number 2049 .*expected 2051") as info:
        F.load_standard("mnist", tmp_path)
    assert str(bad) in str(info.value)


def test_idx_truncated_and_mismatched_files(tmp_path: Path) -> None:
    write_idx_set(tmp_path)
    images = tmp_path / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-5])
    with pytest.raises(readers.DataFormatError, match="truncated"):
        F.load_standard("mnist", tmp_path)
    _write(images, _idx_bytes(np.zeros((N_TEST + 1, 28, 28)), readers.IDX_IMAGES_MAGIC))
    with pytest.raises(readers.DataFormatError, match="11 images but .* 10 labels"):
        F.load_standard("mnist", tmp_path)


def test_idx_truncated_gzip(tmp_path: Path) -> None:
    write_idx_set(tmp_path, gz=True)
    images = tmp_path / "train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:100])
    with pytest.raises(readers.DataFormatError, match="corrupt or truncated gzip"):
        F.load_standard("fashion-mnist", tmp_path)


def test_labels_out_of_range(tmp_path: Path) -> None:
    write_idx_set(tmp_path)
    _write(tmp_path / "t10k-labels-idx1-ubyte", _idx_bytes(np.full(N_TEST, 12), readers.IDX_LABELS_MAGIC))
    with pytest.raises(readers.DataFormatError, match="outside 0..9"):
        F.load_standard("mnist", tmp_path)


def test_cifar_binary_truncated(tmp_path: Path) -> None:
    write_cifar(tmp_path, 100, "binary")
    test_bin = tmp_path / "test.bin"
    test_bin.write_bytes(test_bin.read_bytes()[:-1])
    with pytest.raises(readers.DataFormatError, match="not a whole number of 3074-byte CIFAR records"):
        F.load_standard("cifar100", tmp_path)


def test_cifar_pickle_truncated(tmp_path: Path) -> None:
    write_cifar(tmp_path, 10, "python")
    batch = tmp_path / "test_batch"
    batch.write_bytes(batch.read_bytes()[:-50])
    with pytest.raises(readers.DataFormatError, match="test_batch: not a readable CIFAR python batch"):
        F.load_standard("cifar10", tmp_path)


def test_svhn_truncated(tmp_path: Path) -> None:
    write_svhn(tmp_path)
    mat = tmp_path / "test_32x32.mat"
    mat.write_bytes(mat.read_bytes()[:300])
    with pytest.raises(readers.DataFormatError, match="test_32x32.mat"):
        F.load_standard("svhn", tmp_path)


def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network touched")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.mark.parametrize("name", ["mnist", "cifar10", "cifar100", "svhn"])
def test_missing_files_error_without_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    _no_network(monkeypatch)
    with pytest.raises(F.DatasetNotFoundError) as info:
        F.load_standard(name, tmp_path)
    message = str(info.value)
    assert "downloads are off" in message and str(tmp_path) in message
    assert "--root FOLDER" in message and "root=FOLDER" in message and F.DATA_ENV in message
    assert f"ul.load_dataset('{name}', download=True)" in message and "command line never downloads" in message
    expected = {
        "mnist": f"{tmp_path}/MNIST/raw/{{train-images-idx3-ubyte[.gz]",
        "cifar10": f"{tmp_path}/cifar-10-batches-bin/{{data_batch_1.bin",
        "cifar100": f"{tmp_path}/cifar-100-python/{{train, test}}",
        "svhn": f"{tmp_path}/svhn/{{train_32x32.mat, test_32x32.mat}}",
    }[name]
    assert expected in message
    assert not any(tmp_path.iterdir())  # nothing written either


def test_missing_default_root_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_network(monkeypatch)
    monkeypatch.setenv(F.DATA_ENV, str(tmp_path / "data"))
    with pytest.raises(F.DatasetNotFoundError, match=f"{tmp_path}/data/cifar-10-batches-py"):
        F.load_standard("cifar10")


def test_incomplete_set_names_the_missing_file(tmp_path: Path) -> None:
    write_idx_set(tmp_path, gz=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(F.DatasetNotFoundError, match="missing t10k-labels-idx1-ubyte"):
        F.load_standard("mnist", tmp_path)


def test_offline_download_says_where_to_put_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(F.DatasetNotFoundError, match="(?s)offline.*MNIST/raw/.*UNLEARNLAB_DATA"):
        F.load_standard("mnist", tmp_path, download_missing=True)
    assert not list(tmp_path.rglob("*.part"))


@pytest.mark.slow
@pytest.mark.skipif(
    not (F.DEBIAN_FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"Debian package dataset-fashion-mnist not installed ({F.DEBIAN_FASHION_MNIST_DIR} absent)",
)
def test_real_fashion_mnist_from_debian_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(F.DATA_ENV, str(tmp_path))  # empty data root: falls back to the system location
    ds = F.load_standard("fashion-mnist")
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert sorted(ds.y_train.unique().tolist()) == list(range(10))
    assert sorted(ds.y_test.unique().tolist()) == list(range(10))
    assert float(ds.x_train.max()) == 1.0 and float(ds.x_train.min()) == 0.0
