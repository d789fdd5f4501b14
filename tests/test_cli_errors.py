"""Bad input and unusable output folders end in a clear message: exit code 2, no traceback, nothing written.

One parametrised test walks the list; each case prepares its input (a file, a damaged database, a fault such as
a read-only folder or a full disk simulated by monkeypatching) and runs ``unlearnlab run`` in-process.
"""

from __future__ import annotations

import builtins
import errno
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_cifar10_binary
from typer.testing import CliRunner

from unlearnlab import checksums, utils
from unlearnlab.cli import app
from unlearnlab.generation import digits_denoiser, unet_denoiser
from unlearnlab.models import create

FAST = ["--methods", "ft", "--seeds", "1", "--set", "ft.epochs=1"]


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (empty when the folder does not exist)."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _corrupt_db(out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out.mkdir()
    (out / "results.sqlite").write_bytes(b"this is a text file, not an SQLite database\n" * 20)


def _truncated_db(out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out.mkdir()
    (out / "results.sqlite").write_bytes(b"SQLite format 3\x00" + b"\x10\x00\x01\x01" + b"\x00" * 80)


def _read_only(out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder on a read-only file system: every attempt to create or write a file in it fails with EROFS."""
    out.mkdir()
    (out / "notes.txt").write_text("the user's own file\n")
    real_open, real_os_open = builtins.open, os.open

    def inside(path: object) -> bool:
        return isinstance(path, (str, os.PathLike)) and Path(path).resolve().is_relative_to(out.resolve())

    def ro_open(file, mode="r", *args, **kwargs):
        if inside(file) and any(c in mode for c in "wax+"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(file))
        return real_open(file, mode, *args, **kwargs)

    def ro_os_open(path, flags, *args, **kwargs):
        if inside(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_os_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", ro_open)
    monkeypatch.setattr(os, "open", ro_os_open)


def _disk_full(out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first atomic write (the run's config.yaml) finds no space left on the device."""

    def no_space(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(utils, "atomic_write_bytes", no_space)


def _cpu_only(out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def _nothing(out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pass


def _index_files(out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = out.parent
    (folder / "text.npy").write_text("1, 2, 3\n")
    np.save(folder / "floats.npy", np.array([0.5, 1.5]))
    np.savez(folder / "archive.npz", idx=np.array([1, 2]))
    (folder / "folder.npy").mkdir()


def _user_models(out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files a user might pass as --original: a model of another width, a text file, a damaged checkpoint (its
    checksum file disagrees), a folder."""
    folder = out.parent
    torch.save(create("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=(64,)).state_dict(), folder / "wide.pt")
    torch.save(create("mlp", input_shape=(1, 8, 8), num_classes=3).state_dict(), folder / "three.pt")
    (folder / "notes.pt").write_text("my model is the one from Tuesday\n")
    data = checksums.torch_bytes(create("mlp", input_shape=(1, 8, 8), num_classes=10).state_dict())
    checksums.write_checked(folder / "flipped.pt", data)
    (folder / "flipped.pt").write_bytes(data[:2000] + bytes([data[2000] ^ 1]) + data[2001:])
    (folder / "empty.pt").write_bytes(b"")
    (folder / "models").mkdir()


def _cache_is_a_file(out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (out.parent / "cachefile").write_text("not a folder\n")
    (out.parent / "cache-file.yaml").write_text(f"cache_dir: {out.parent / 'cachefile'}\n")


def _cache_unreadable(out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache folder this user may not read or write (simulated: the tests run as root, who may)."""
    cache = out.parent / "locked-cache"
    cache.mkdir()
    (out.parent / "locked-cache.yaml").write_text(f"cache_dir: {cache}\n")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, *a, **k: False if Path(path) == cache
                        else real_access(path, mode, *a, **k))


def _cifar_without_class_3(out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_cifar10_binary(out.parent / "cifar", classes=(0, 1, 2, 4, 5, 6, 7, 8, 9))


def _denoisers(out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Digits denoisers a user might pass as --original: one without its class embedding (no class conditioning),
    one trained on five classes."""
    state = digits_denoiser().state_dict()
    del state["net.classes.weight"]
    torch.save(state, out.parent / "unconditional.pt")
    torch.save(digits_denoiser(num_classes=5).state_dict(), out.parent / "five.pt")


def _unconditional_unet(out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bare diffusers UNet2DModel of the tier's layout but without class embeddings, and CIFAR-10 files."""
    diffusers = pytest.importorskip("diffusers")
    config = dict(unet_denoiser("fmnist", (3, 32, 32)).net.unet.config)
    unet = diffusers.UNet2DModel.from_config({**config, "num_class_embeds": None})
    torch.save(unet.state_dict(), out.parent / "unet.pt")
    write_cifar10_binary(out.parent / "cifar")


def _no_diffusers(out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "diffusers", None)  # `import diffusers` raises ImportError


Prepare = Callable[[Path, pytest.MonkeyPatch], None]
DDPM = ["--protocol", "ddpm-digits-class0", "--quick"]

CASES: list[tuple[str, Prepare, list[str], str]] = [
    ("corrupt-db", _corrupt_db, FAST, r"results\.sqlite is not a readable unlearnlab results database.*mv "),
    ("truncated-db", _truncated_db, FAST, r"results\.sqlite is not a readable unlearnlab results database"),
    ("read-only-out", _read_only, FAST, r"Cannot write .*Read-only file system.*writable --out"),
    ("disk-full", _disk_full, FAST, r"No space left on the device while writing .*config\.yaml.*re-run"),
    ("device-gpu0", _nothing, ["--device", "gpu0"], r"device 'gpu0' is not a device name: use cpu, cuda"),
    ("device-cuda-cpu-only", _cpu_only, ["--device", "cuda"], r"--device cuda: .*Use --device cpu"),
    ("threads-zero", _nothing, ["--threads", "0"], r"'threads' must be an integer >= 1, got 0"),
    ("threads-negative", _nothing, ["--threads", "-2"], r"'threads' must be an integer >= 1, got -2"),
    ("set-bad-yaml", _nothing, ["--set", "ft.lr=[0.1,"], r"--set 'ft\.lr=\[0\.1,': the value is not valid YAML"),
    ("set-python-tag", _nothing, ["--set", "ft.lr=!!python/object/apply:os.system ['true']"],
     r"is not valid YAML"),
    ("set-no-method", _nothing, ["--set", "lr=0.1"], r"use METHOD\.KEY=VALUE"),
    ("indices-missing", _nothing, ["--forget", "indices:missing.npy"], r"missing\.npy does not exist"),
    ("indices-not-npy", _index_files, ["--forget", "indices:{tmp}/text.npy"], r"not a readable NumPy \.npy"),
    ("indices-floats", _index_files, ["--forget", "indices:{tmp}/floats.npy"], r"1-D integer array"),
    ("indices-npz", _index_files, ["--forget", "indices:{tmp}/archive.npz"], r"is an \.npz archive"),
    ("indices-folder", _index_files, ["--forget", "indices:{tmp}/folder.npy"], r"does not exist"),
    ("random-1-ambiguous", _nothing, ["--forget", "random:1"],
     r"'random:1' is ambiguous.*'random:count=1'.*'random:0\.1'"),
    ("random-1.0-everything", _nothing, ["--forget", "random:1.0"], r"outside \(0, 1\)"),
    ("config-not-utf8", _nothing, ["--config", "{tmp}/binary.yaml"], r"cannot be read as UTF-8"),
    ("original-missing", _nothing, [*FAST, "--original", "{tmp}/missing.pt"],
     r"original \S*missing\.pt does not exist"),
    ("original-folder", _user_models, [*FAST, "--original", "{tmp}/models"], r"original \S*models is not a file"),
    ("original-wrong-width", _user_models, [*FAST, "--original", "{tmp}/wide.pt"],
     r"wide\.pt does not fit model 'mlp' of this task \(shape of 1\.1\.bias: checkpoint \(64,\) vs model \(128,\)"),
    ("original-wrong-classes", _user_models, [*FAST, "--original", "{tmp}/three.pt"],
     r"three\.pt does not fit .*shape of 1\.3\.bias: checkpoint \(3,\) vs model \(10,\)"),
    ("original-wrong-model", _user_models, [*FAST, "--model", "small_cnn", "--original", "{tmp}/wide.pt"],
     r"does not fit model 'small_cnn' of this task \(missing \[.*unexpected \['1\.1\.bias'"),
    ("original-not-a-checkpoint", _user_models, [*FAST, "--original", "{tmp}/notes.pt"],
     r"notes\.pt cannot be used \(not a PyTorch file\)"),
    ("original-damaged", _user_models, [*FAST, "--original", "{tmp}/flipped.pt"],
     r"flipped\.pt cannot be used \(checksum mismatch\)"),
    ("original-empty", _user_models, [*FAST, "--original", "{tmp}/empty.pt"],
     r"empty\.pt cannot be used \(empty file\)"),
    ("original-with-protocol", _user_models, ["--protocol", "salun-random1", "--quick", "--original",
                                              "{tmp}/wide.pt"], r"trains its own original model"),
    ("cache-dir-is-a-file", _cache_is_a_file, [*FAST, "--config", "{tmp}/cache-file.yaml"],
     r"model cache \S*cachefile cannot be used: \S*cachefile is not a folder"),
    ("cache-dir-unreadable", _cache_unreadable, [*FAST, "--config", "{tmp}/locked-cache.yaml"],
     r"model cache \S*locked-cache cannot be used: .* is not readable and writable"),
    ("ddpm-unknown-class", _nothing, ["--protocol", "ddpm-digits-class12", "--quick"],
     r"Class 12 is not a class of digits \(classes 0 … 9\): pick one of them"),
    ("ddpm-class-absent", _cifar_without_class_3, ["--protocol", "ddpm-cifar10-class3", "--root", "{tmp}/cifar"],
     r"Class 3 has no training images in cifar10 \(its files hold classes \[0, 1, 2, 4, .*nothing to forget"),
    ("ddpm-classifier-other-classes", _cifar_without_class_3,
     ["--protocol", "ddpm-cifar10-class0", "--root", "{tmp}/cifar"],
     r"Classes \[3\] have no training images in cifar10: the evaluation classifier must be trained on every class"),
    ("ddpm-original-unconditional", _denoisers, [*DDPM, "--original", "{tmp}/unconditional.pt"],
     r"unconditional\.pt has no class conditioning \(no class embedding 'net\.classes\.weight'\).*"
     r"num_class_embeds=11"),
    ("ddpm-original-unconditional-unet", _unconditional_unet,
     ["--protocol", "ddpm-cifar10-class0", "--root", "{tmp}/cifar", "--set", "tier.model=unet:fmnist",
      "--original", "{tmp}/unet.pt"],
     r"unet\.pt has no class conditioning \(no class embedding 'net\.unet\.class_embedding\.weight'\)"),
    ("ddpm-original-other-classes", _denoisers, [*DDPM, "--original", "{tmp}/five.pt"],
     r"five\.pt does not fit the digits-mlp model of this tier with 10 classes \(shape of net\.classes\.weight: "
     r"checkpoint \(6, 256\) vs model \(11, 256\)"),
    ("ddpm-negative-guidance", _nothing, [*DDPM, "--set", "sampler.guidance=-1"],
     r"The guidance scale must be >= 0 .*got -1"),
    ("ddpm-zero-steps", _nothing, [*DDPM, "--set", "sampler.steps=0"], r"The sampler needs steps >= 1"),
    ("ddpm-steps-above-T", _nothing, [*DDPM, "--set", "sampler.steps=2000"],
     r"2000 sampler steps exceed the model's T = 1000"),
    ("ddpm-gate-not-settable", _nothing, [*DDPM, "--set", "tier.recognition=0"], r"Unknown tier setting 'recognition'"),
    ("ddpm-unknown-group", _nothing, [*DDPM, "--set", "unet.width=3"],
     r"'unet' is neither a method of this run nor a setting group"),
    ("ddpm-method-not-in-protocol", _nothing, [*DDPM, "--methods", "retrain,salun"],
     r"salun: not a method of protocol 'ddpm-digits-class0'"),
    ("ddpm-unet-without-diffusers", _no_diffusers, ["--protocol", "ddpm-fmnist-class0", "--quick"],
     r"The UNet models need the optional extra 'gen': pip install 'unlearnlab\[gen\]'"),
    ("experiment-original", _denoisers, ["--protocol", "certified-budget", "--quick", "--original", "{tmp}/five.pt"],
     r"--original: protocol 'certified-budget' is an experiment; it takes only --out, --root"),
]


@pytest.mark.parametrize(("prepare", "args", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_a_message_no_traceback_and_nothing_written(tmp_path: Path, cache_dir: Path,
                                                                           monkeypatch: pytest.MonkeyPatch,
                                                                           prepare: Prepare, args: list[str],
                                                                           message: str):
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00bad")
    out = tmp_path / "out"
    prepare(out, monkeypatch)
    before = _snapshot(out)
    result = CliRunner().invoke(app, ["run", "--out", str(out), *(a.replace("{tmp}", str(tmp_path)) for a in args)],
                                env={"COLUMNS": "250"})
    monkeypatch.undo()  # restore open() & co. before reading the folder back
    text = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert text.startswith("error:") or " error: " in f" {text}", result.output
    assert re.search(message, text), result.output
    assert _snapshot(out) == before, "the output folder changed"
    assert not out.exists() or before, "an output folder was created"
    assert not cache_dir.exists(), "a model was trained or cached"


def test_files_written_for_others_follow_the_umask(tmp_path: Path):
    old = os.umask(0o022)
    try:
        utils.atomic_write_text(tmp_path / "table.md", "| a |\n")
        assert (tmp_path / "table.md").stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        utils.atomic_write_text(tmp_path / "private.md", "| a |\n")
        assert (tmp_path / "private.md").stat().st_mode & 0o777 == 0o600
        assert utils.umask() == 0o077
    finally:
        os.umask(old)
