"""An output folder held by one run: a lock against concurrent runs, ``run.log``, clean failure, clear errors.

* **Lock.** ``OUT/.unlearnlab.lock`` is locked with ``flock`` for the whole run and names the holder (pid,
  host, start time, command). A second run on the same folder refuses with a message naming the holder. The
  operating system drops the lock when its process dies, however it dies, so a lock left by a killed run is
  simply taken over (the log says so).
* **run.log.** Every message of the run, and its progress lines, appended with a timestamp as plain text.
* **Clean failure.** When a run fails before it wrote its first result row (a corrupt results database, a
  full disk, …), the folder is put back as it was: files the run created are removed, and the folder itself
  when the run created it.
* **Clear errors.** A read-only folder, a full disk or a damaged SQLite file raise
  :class:`~unlearnlab.errors.UnlearnlabError` saying what happened and what to do, never a traceback.
"""

from __future__ import annotations

import datetime
import errno
import os
import socket
import sqlite3
from pathlib import Path
from types import TracebackType
from typing import IO

from rich.errors import MarkupError
from rich.markup import escape
from rich.text import Text

from unlearnlab.bench.store import FILENAME, database_error
from unlearnlab.errors import UnlearnlabError

try:  # POSIX; elsewhere the folder is not locked (the log says so)
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".unlearnlab.lock"
LOG_NAME = "run.log"
#: errno values of a folder that cannot be written, and of a full disk
READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)
FULL = (errno.ENOSPC, errno.EDQUOT)
#: errno values of a file system without flock (some network file systems)
NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)


def write_error(err: OSError, where: Path) -> UnlearnlabError | None:
    """A clear error for an ``OSError`` of a read-only place or a full disk (``None`` for any other)."""
    path = err.filename or where
    if err.errno in FULL:
        return UnlearnlabError(f"No space left on the device while writing {path}: free some space (or choose "
                               "another --out / $UNLEARNLAB_CACHE) and re-run the same command; finished rows "
                               "are kept and the run resumes.")
    if err.errno in READ_ONLY:
        return UnlearnlabError(f"Cannot write {path} ({os.strerror(err.errno)}): choose a writable --out folder, "
                               "or make this one writable.")
    return None


def _holder(path: Path) -> dict[str, str]:
    """The ``key: value`` lines of a lock file (empty when unreadable)."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return {}
    return dict(line.split(": ", 1) for line in lines if ": " in line)


class RunFolder:
    """The output folder of one run, as a context manager (see the module docstring)."""

    def __init__(self, path: str | Path, command: str = "unlearnlab run") -> None:
        self.path = Path(path)
        self.command = command
        #: a lock file of a run that died, found and taken over on entry (its ``pid``, ``host``, ``started``)
        self.took_over: dict[str, str] = {}
        #: why the folder could not be locked (no flock on this platform or file system); empty when locked
        self.unlocked = ""
        self._kept = False
        self._before: set[str] | None = None
        self._created = False
        self._lock: IO[str] | None = None
        self._log: IO[str] | None = None

    # -------------------------------------------------------------------------------------------- entry, exit
    def __enter__(self) -> RunFolder:
        if self.path.exists() and not self.path.is_dir():
            raise UnlearnlabError(f"--out {self.path} is a file, not a folder: choose a folder for the results.")
        try:
            self._created = not self.path.exists()
            self.path.mkdir(parents=True, exist_ok=True)
            self._before = {p.name for p in self.path.iterdir()}
            self._acquire()
            self._log = open(self.path / LOG_NAME, "a", encoding="utf-8")
        except BaseException as err:
            self._release(failed=True)
            translated = self._translated(err)
            if translated is not err:
                raise translated from None
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._release(failed=exc is not None)
        if exc is not None:
            translated = self._translated(exc)
            if translated is not exc:
                raise translated from None

    def notes(self) -> list[str]:
        """What a run should tell about its folder: a dead run's lock taken over, or no lock at all."""
        notes = []
        if self.unlocked:
            notes.append(f"[yellow]{escape(str(self.path))} is not locked: {escape(self.unlocked)}[/yellow]; do not "
                         "start a second run on it before this one ends")
        if self.took_over:
            notes.append(f"took over the lock of an earlier run that is gone (pid {self.took_over.get('pid', '?')}, "
                         f"started {self.took_over.get('started', '?')})")
        return notes

    def keep(self) -> None:
        """Results exist from now on: a later failure leaves the folder as it is (the run resumes)."""
        self._kept = True

    # -------------------------------------------------------------------------------------------- log
    def log(self, text: str) -> None:
        """Append ``text`` (rich markup removed) to ``run.log`` with a timestamp."""
        if self._log is None:
            return
        try:
            plain = Text.from_markup(text).plain
        except MarkupError:
            plain = text
        stamp = datetime.datetime.now().isoformat(timespec="seconds")
        for line in plain.splitlines() or [""]:
            self._log.write(f"{stamp}  {line}\n")
        self._log.flush()

    # -------------------------------------------------------------------------------------------- internals
    def _acquire(self) -> None:
        path = self.path / LOCK_NAME
        previous = _holder(path) if path.exists() else {}
        handle = open(path, "a+", encoding="utf-8")
        try:
            self._flock(handle, path)
        except BaseException:
            handle.close()
            raise
        self.took_over = {} if self.unlocked else previous
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid: {os.getpid()}\nhost: {socket.gethostname()}\n"
                     f"started: {datetime.datetime.now().isoformat(timespec='seconds')}\n"
                     f"command: {self.command}\n")
        handle.flush()
        self._lock = handle

    def _flock(self, handle: IO[str], path: Path) -> None:
        """Lock ``handle`` (refusing a folder another run holds), or note why the folder stays unlocked."""
        if fcntl is None:
            self.unlocked = "this platform has no flock()"
            return
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(path)
            raise UnlearnlabError(
                f"{self.path} is in use by another unlearnlab run (pid {holder.get('pid', '?')} on "
                f"{holder.get('host', '?')}, started {holder.get('started', '?')}): wait for it to finish, or "
                "choose another --out. Two runs on one folder would compute the same cells twice.") from None
        except OSError as err:
            if err.errno not in NO_LOCKS:
                raise
            self.unlocked = f"its file system does not support locks ({os.strerror(err.errno)})"

    def _release(self, failed: bool) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
        if failed and not self._kept and self._before is not None:
            self._restore()
        if self._lock is not None:
            if fcntl is not None and not self.unlocked:
                fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def _restore(self) -> None:
        """Remove what this run created (it failed before writing any result)."""
        assert self._before is not None
        for entry in self.path.iterdir():
            if entry.name not in self._before and entry.is_file():
                entry.unlink(missing_ok=True)
        if self._created and not any(self.path.iterdir()):
            self.path.rmdir()

    def _translated(self, err: BaseException) -> BaseException:
        if isinstance(err, OSError):
            return write_error(err, self.path) or err
        if isinstance(err, sqlite3.Error):
            return database_error(err, self.path / FILENAME)
        return err
