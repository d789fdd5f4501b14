"""Shared fixtures: one thread, a per-test model cache, the digits task and a trained MLP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import unlearnlab as ul

torch.set_num_threads(1)

#: epochs of the original model used by the method tests (enough for 100 % forget accuracy on digits)
ORIGINAL_EPOCHS = 15


@pytest.fixture(autouse=True, scope="session")
def _single_thread():
    """The suite runs on 2 shared cores: one torch thread keeps it fast and CPU results bitwise stable."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh model cache for one test (``UNLEARNLAB_CACHE``), so no test reads another's checkpoints."""
    path = tmp_path / "model-cache"
    monkeypatch.setenv("UNLEARNLAB_CACHE", str(path))
    return path


@pytest.fixture(scope="session")
def digits_task() -> ul.ForgetTask:
    """digits, random 10 % forgetting (130 of 1,302), seed 1, on the CPU. Tests must not mutate it."""
    return ul.make_task("digits", "random:0.1", seed=1, device="cpu")


def train_original(task: ul.ForgetTask, epochs: int = ORIGINAL_EPOCHS) -> torch.nn.Module:
    model = ul.models.create("mlp", task)
    ul.train(model, task.train, ul.Recipe.default(task).replace(epochs=epochs))
    return model.eval()


@pytest.fixture(scope="module")
def trained_mlp(digits_task: ul.ForgetTask) -> torch.nn.Module:
    """An ``mlp`` trained on D for 15 epochs (original model). Tests must not mutate it (unlearn copies)."""
    return train_original(digits_task)


def write_cifar10_binary(root: Path, train_per_class: int = 12, test_per_class: int = 3,
                         classes: tuple[int, ...] = tuple(range(10)), seed: int = 0) -> Path:
    """Tiny CIFAR-10 files in the official binary format under ``root/cifar-10-batches-bin``: five training batches
    and a test batch of records ``label byte + 3,072 pixel bytes`` (R, G, B planes of 32×32), random pixels, only
    ``classes`` present. Returns ``root``."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True, exist_ok=True)

    def records(per_class: int) -> np.ndarray:
        labels = np.repeat(np.asarray(classes, dtype=np.uint8), per_class)
        pixels = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
        return np.hstack([labels[:, None], pixels])[rng.permutation(len(labels))]

    for i, part in enumerate(np.array_split(records(train_per_class), 5), start=1):
        (folder / f"data_batch_{i}.bin").write_bytes(part.tobytes())
    (folder / "test_batch.bin").write_bytes(records(test_per_class).tobytes())
    return root
