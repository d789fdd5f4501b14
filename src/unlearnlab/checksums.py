"""Checksummed files: every checkpoint the package writes carries the SHA-256 of its bytes, verified before use.

A file ``X`` is written atomically, then its checksum file ``X.sha256`` — one line in the format of
``sha256sum`` (``<64 hex digits>  X``), so ``sha256sum -c X.sha256`` checks it by hand. Reading a file verifies
its bytes against the expected digest (given by the caller, else the one in ``X.sha256``) *before* anything
parses them: a file that is empty, truncated, has a flipped bit or lacks its checksum raises
:class:`DamagedFileError` saying which, and its bytes never reach :func:`torch.load`. Torch objects are read
with ``torch.load(weights_only=True)`` only, so even a file whose checksum matches cannot run code.

The checksum is written after the file: a process killed in between leaves a file without a checksum, which
readers treat as damaged (a cache retrains it), never as valid. See docs/architecture.md, "Checksummed
checkpoints".
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path
from typing import Any

import torch

from unlearnlab.errors import UnlearnlabError
from unlearnlab.utils import atomic_write_bytes

#: suffix of the checksum file next to a checkpoint
SUFFIX = ".sha256"
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class DamagedFileError(UnlearnlabError):
    """A file that cannot be used as it is; :attr:`reason` says why in a few words (e.g. "checksum mismatch")."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path} is damaged ({reason}): delete it (and {Path(path).name}{SUFFIX}) and "
                         "recreate it, or use an intact copy.")


def checksum_path(path: str | Path) -> Path:
    """``dir/X`` → ``dir/X.sha256``."""
    path = Path(path)
    return path.with_name(path.name + SUFFIX)


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data`` as 64 lower-case hex digits."""
    return hashlib.sha256(data).hexdigest()


def write_checked(path: str | Path, data: bytes, durable: bool = True) -> str:
    """Write ``data`` to ``path`` and then its checksum file, each atomically; returns the digest.

    ``durable=False`` skips the fsyncs (see :func:`~unlearnlab.utils.atomic_write_bytes`): for files whose
    loss after a power failure only costs recomputation, since a torn file fails its checksum."""
    digest = sha256_hex(data)
    atomic_write_bytes(path, data, durable=durable)
    atomic_write_bytes(checksum_path(path), f"{digest}  {Path(path).name}\n".encode("ascii"), durable=durable)
    return digest


def recorded_digest(path: str | Path) -> str | None:
    """The digest in ``path``'s checksum file; ``None`` when there is none; :class:`DamagedFileError` when the
    checksum file is unreadable."""
    side = checksum_path(path)
    if not side.exists():
        return None
    try:
        first = side.read_bytes().decode("ascii").split()[0].lower()
    except (UnicodeDecodeError, IndexError):
        raise DamagedFileError(path, f"unreadable checksum file {side.name}") from None
    if not _DIGEST.match(first):
        raise DamagedFileError(path, f"unreadable checksum file {side.name}")
    return first


def verify(data: bytes, digest: str, path: str | Path) -> None:
    """Raise :class:`DamagedFileError` unless ``data`` has the SHA-256 ``digest``."""
    if not data:
        raise DamagedFileError(path, "empty file")
    if sha256_hex(data) != digest:
        raise DamagedFileError(path, "checksum mismatch")


def read_checked(path: str | Path, digest: str | None = None, required: bool = True) -> bytes:
    """The bytes of ``path``, verified against ``digest`` or else its checksum file.

    With ``required=False`` a file that has neither (e.g. a state dict a user saved with ``torch.save``) is
    returned unverified; an empty file is refused either way.
    """
    path = Path(path)
    if not path.is_file():
        raise DamagedFileError(path, "not a file" if path.exists() else "file missing")
    data = path.read_bytes()
    expected = digest or recorded_digest(path)
    if expected is not None:
        verify(data, expected, path)
    elif required:
        raise DamagedFileError(path, "checksum missing" if data else "empty file")
    elif not data:
        raise DamagedFileError(path, "empty file")
    return data


def remove_checked(path: str | Path) -> None:
    """Delete ``path`` and its checksum file (either may be absent)."""
    for p in (Path(path), checksum_path(path)):
        p.unlink(missing_ok=True)


def torch_bytes(obj: Any) -> bytes:
    """``obj`` serialised by :func:`torch.save` (tensors, containers and plain values only)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def torch_object(data: bytes, path: str | Path) -> Any:
    """Deserialise verified bytes with ``torch.load(weights_only=True)`` on the CPU.

    Anything it refuses — a file of another kind, a pickle naming code — raises :class:`DamagedFileError`
    ("not a weights-only PyTorch file"); the weights-only restriction is never lifted.
    """
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, ... for foreign bytes
        if not data.startswith(b"PK\x03\x04"):  # neither torch.save's zip archive ...
            raise DamagedFileError(path, "not a PyTorch file") from None  # ... nor a legacy pickle it could read
        detail = " ".join(str(err).split())[:160]
        raise DamagedFileError(path, f"not a weights-only PyTorch file: {type(err).__name__}: {detail}") from None


def save_torch(path: str | Path, obj: Any, durable: bool = True) -> str:
    """:func:`torch_bytes` of ``obj`` written with :func:`write_checked`; returns the digest."""
    return write_checked(path, torch_bytes(obj), durable)


def load_torch(path: str | Path, digest: str | None = None, required: bool = True) -> tuple[Any, str]:
    """``(object, digest)`` of a file written by :func:`save_torch`, verified before it is deserialised."""
    data = read_checked(path, digest, required)
    return torch_object(data, path), sha256_hex(data)
