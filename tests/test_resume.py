"""Resumable training: ``train(checkpoint=...)`` saves its whole state every epoch; a run interrupted after epoch k
(an exception, or SIGKILL of the process) and resumed gives a model bit-identical to an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

import unlearnlab as ul
from unlearnlab.bench.cache import ModelCache
from unlearnlab.checksums import checksum_path
from unlearnlab.train_state import TrainCheckpoint
from unlearnlab.training import train


class Stop(Exception):
    """The injected interruption."""


def _dropout_mlp(task: ul.ForgetTask) -> nn.Module:
    """A model that draws from torch's global RNG while it trains (dropout)."""
    torch.manual_seed(11)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.3), nn.Linear(64, task.num_classes))


SETTINGS = {
    "mlp-sgd-cosine": (lambda t: ul.models.create("mlp", t, seed=3), ul.Recipe(epochs=4)),
    "bn_cnn-adam-augment": (lambda t: ul.models.create("bn_cnn", t, seed=3),
                            ul.Recipe(epochs=4, optimizer="adam", lr=1e-3, augment=True, batch_size=100)),
    "mlp-lion-onecycle": (lambda t: ul.models.create("mlp", t, seed=3),
                          ul.Recipe(epochs=4, optimizer="lion", lr=1e-4, schedule="onecycle")),
    "mlp-multistep": (lambda t: ul.models.create("mlp", t, seed=3),
                      ul.Recipe(epochs=4, schedule="multistep", milestones=(1, 3), gamma=0.5)),
    "mlp-adamw-constant": (lambda t: ul.models.create("mlp", t, seed=3),
                           ul.Recipe(epochs=4, optimizer="adamw", lr=1e-3, schedule="constant")),
    "dropout-global-rng": (_dropout_mlp, ul.Recipe(epochs=4)),
}


def _same(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _uninterrupted(make, recipe: ul.Recipe, task: ul.ForgetTask) -> tuple[nn.Module, ul.training.TrainStats]:
    model = make(task)
    torch.manual_seed(5)  # the global RNG state at the start of training (dropout draws from it)
    return model, train(model, task.train, recipe, seed=2)


@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("stop_after", [1, 3])
def test_training_interrupted_after_epoch_k_resumes_to_the_identical_model(tmp_path: Path, digits_task, setting,
                                                                             stop_after):
    make, recipe = SETTINGS[setting]
    reference, ref_stats = _uninterrupted(make, recipe, digits_task)
    notes: list[str] = []
    checkpoint = TrainCheckpoint(tmp_path / "run.train-state", notes.append)

    def stop(done: int, total: int) -> None:
        if done == stop_after:
            raise Stop

    first = make(digits_task)
    torch.manual_seed(5)
    with pytest.raises(Stop):
        train(first, digits_task.train, recipe, seed=2, checkpoint=checkpoint, progress=stop)
    assert checkpoint.path.exists() and checksum_path(checkpoint.path).exists()

    torch.manual_seed(999)  # the resumed process starts from another global RNG state and other weights
    resumed = make(digits_task)
    with torch.no_grad():
        for p in resumed.parameters():
            p.add_(1.0)
    stats = train(resumed, digits_task.train, recipe, seed=2, checkpoint=checkpoint)
    assert notes == [f"resuming training from epoch {stop_after} of 4 (run.train-state)"]
    assert _same(resumed, reference)
    assert stats.counters == ref_stats.counters  # the epochs before the interruption are counted
    assert stats.final_loss == ref_stats.final_loss


def test_a_sigkilled_training_resumes_to_the_identical_model(tmp_path: Path, digits_task):
    recipe = ul.Recipe(epochs=5)
    reference = ul.models.create("mlp", digits_task, seed=3)
    train(reference, digits_task.train, recipe, seed=2)
    path = tmp_path / "killed.train-state"
    child = textwrap.dedent(f"""
        import os, signal, torch
        import unlearnlab as ul
        from unlearnlab.train_state import TrainCheckpoint
        from unlearnlab.training import train
        torch.set_num_threads(1)
        task = ul.make_task("digits", "random:0.1", seed=1, device="cpu")
        model = ul.models.create("mlp", task, seed=3)

        def die(done, total):
            if done == 3:
                os.kill(os.getpid(), signal.SIGKILL)

        train(model, task.train, ul.Recipe(epochs=5), seed=2, checkpoint=TrainCheckpoint({str(path)!r}),
              progress=die)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == -signal.SIGKILL, run.stderr
    notes: list[str] = []
    resumed = ul.models.create("mlp", digits_task, seed=4)
    train(resumed, digits_task.train, recipe, seed=2, checkpoint=TrainCheckpoint(path, notes.append))
    assert notes == ["resuming training from epoch 3 of 5 (killed.train-state)"]
    assert _same(resumed, reference)


def _stopped_state(tmp_path: Path, task: ul.ForgetTask, recipe: ul.Recipe) -> TrainCheckpoint:
    checkpoint = TrainCheckpoint(tmp_path / "x.train-state")

    def stop(done: int, total: int) -> None:
        if done == 2:
            raise Stop

    with pytest.raises(Stop):
        train(ul.models.create("mlp", task, seed=3), task.train, recipe, seed=2, checkpoint=checkpoint,
              progress=stop)
    return checkpoint


def test_a_state_of_another_training_is_ignored(tmp_path: Path, digits_task):
    saved = _stopped_state(tmp_path, digits_task, ul.Recipe(epochs=4))
    other = ul.Recipe(epochs=4, lr=0.01)  # another recipe: the state must not be used
    reference = ul.models.create("mlp", digits_task, seed=3)
    train(reference, digits_task.train, other, seed=2)
    notes: list[str] = []
    model = ul.models.create("mlp", digits_task, seed=3)
    train(model, digits_task.train, other, seed=2, checkpoint=TrainCheckpoint(saved.path, notes.append))
    assert notes == ["training checkpoint x.train-state belongs to another training: training from the start"]
    assert _same(model, reference)


@pytest.mark.parametrize("damage", ["truncate", "flip", "no-checksum"])
def test_a_damaged_state_is_reported_and_training_starts_over(tmp_path: Path, digits_task, damage):
    recipe = ul.Recipe(epochs=4)
    saved = _stopped_state(tmp_path, digits_task, recipe)
    data = saved.path.read_bytes()
    half = len(data) // 2
    if damage == "truncate":
        saved.path.write_bytes(data[:half])
    elif damage == "flip":
        saved.path.write_bytes(data[:half] + bytes([data[half] ^ 0x10]) + data[half + 1:])
    else:
        checksum_path(saved.path).unlink()
    reference = ul.models.create("mlp", digits_task, seed=3)
    train(reference, digits_task.train, recipe, seed=2)
    notes: list[str] = []
    model = ul.models.create("mlp", digits_task, seed=3)
    train(model, digits_task.train, recipe, seed=2, checkpoint=TrainCheckpoint(saved.path, notes.append))
    reason = "checksum missing" if damage == "no-checksum" else "checksum mismatch"
    assert notes[0] == f"training checkpoint x.train-state is damaged ({reason}): training from the start"
    assert _same(model, reference)


def test_the_public_train_takes_a_checkpoint_path(tmp_path: Path, digits_task):
    recipe = ul.Recipe(epochs=3)
    reference = ul.models.create("mlp", digits_task, seed=3)
    ul.train(reference, digits_task.train, recipe)
    path = tmp_path / "mine.ckpt"

    def stop(done: int, total: int) -> None:
        if done == 1:
            raise Stop

    with pytest.raises(Stop):
        ul.train(ul.models.create("mlp", digits_task, seed=3), digits_task.train, recipe, checkpoint=path,
                 progress=stop)
    model = ul.models.create("mlp", digits_task, seed=9)
    ul.train(model, digits_task.train, recipe, checkpoint=str(path))
    assert _same(model, reference)


def test_the_cache_resumes_a_killed_training_and_deletes_its_state_once_cached(tmp_path: Path, digits_task):
    cache = ModelCache(tmp_path / "cache", log=(notes := []).append)
    identity = {"kind": "original", "dataset": "digits", "model": "mlp", "recipe": {"epochs": 4}, "data": "x",
                "seed": 1}
    recipe = ul.Recipe(epochs=4)
    calls: list[int] = []

    def fit(model: nn.Module, stop_after: int | None = None) -> dict:
        calls.append(1)

        def stop(done: int, total: int) -> None:
            if done == stop_after:
                raise Stop

        stats = train(model, digits_task.train, recipe, seed=1, checkpoint=cache.partial(identity), progress=stop)
        return {"seconds": stats.seconds}

    with pytest.raises(Stop):
        cache.get_or_train(identity, ul.models.create("mlp", digits_task, seed=1), lambda m: fit(m, 2))
    state = cache.path(identity).with_name(cache.path(identity).name + ".train-state")
    assert state.exists() and not cache.path(identity).exists()
    model = ul.models.create("mlp", digits_task, seed=1)
    _, cached = cache.get_or_train(identity, model, fit)
    assert not cached and notes == [f"resuming training from epoch 2 of 4 ({state.name})"]
    assert not state.exists() and not checksum_path(state).exists()  # deleted once the model is cached
    reference = ul.models.create("mlp", digits_task, seed=1)
    train(reference, digits_task.train, recipe, seed=1)
    assert _same(model, reference)
    assert ModelCache(tmp_path / "cache", enabled=False).partial(identity) is None  # --no-cache never resumes
