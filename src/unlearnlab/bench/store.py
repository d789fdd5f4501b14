"""Results store: one SQLite file (WAL mode, one writer process) holding one row per (task, method, config, seed).

A row is created with status ``running`` by :meth:`ResultStore.start` and completed by
:meth:`ResultStore.finish`, each in one transaction. A process killed between the two leaves a ``running`` row;
re-running the same cell overwrites it (the run key is the primary key), so resuming never duplicates a row.
Readers in other processes see only committed states (WAL lets them read while the writer works).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unlearnlab.errors import UnlearnlabError
from unlearnlab.utils import environment

if TYPE_CHECKING:
    from typing_extensions import Self

FILENAME = "results.sqlite"
FINAL_STATUSES = ("done", "diverged", "failed")
COMPLETE_STATUSES = ("done", "diverged")
JSON_COLUMNS = ("config", "metrics", "definitions", "stats", "env")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_key TEXT PRIMARY KEY,
    task_key TEXT NOT NULL,
    protocol TEXT NOT NULL,
    method TEXT NOT NULL,
    seed INTEGER NOT NULL,
    config_json TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    split_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    metrics_json TEXT NOT NULL DEFAULT '{}',
    definitions_json TEXT NOT NULL DEFAULT '{}',
    stats_json TEXT NOT NULL DEFAULT '{}',
    env_json TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    created REAL NOT NULL,
    finished REAL
);
CREATE INDEX IF NOT EXISTS runs_group ON runs (protocol, task_key);
"""

_UPSERT = """
INSERT INTO runs (run_key, task_key, protocol, method, seed, config_json, config_hash, split_hash, status,
                  metrics_json, definitions_json, stats_json, env_json, error, created, finished)
VALUES (:run_key, :task_key, :protocol, :method, :seed, :config_json, :config_hash, :split_hash, 'running',
        '{}', '{}', '{}', :env_json, NULL, :created, NULL)
ON CONFLICT (run_key) DO UPDATE SET
    task_key = excluded.task_key, protocol = excluded.protocol, method = excluded.method, seed = excluded.seed,
    config_json = excluded.config_json, config_hash = excluded.config_hash, split_hash = excluded.split_hash,
    status = 'running', metrics_json = '{}', definitions_json = '{}', stats_json = '{}',
    env_json = excluded.env_json, error = NULL, created = excluded.created, finished = NULL
"""

_FINISH = """
UPDATE runs SET status = :status, metrics_json = :metrics_json, definitions_json = :definitions_json,
                stats_json = :stats_json, error = :error, finished = :finished
WHERE run_key = :run_key
"""


def _json_default(obj: Any) -> Any:
    """Encode NumPy/torch scalars and arrays (anything with ``tolist``) as plain JSON values."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serialisable")


def canonical_json(obj: Any) -> str:
    """Deterministic JSON text: sorted keys, no whitespace, NumPy values as plain numbers."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)


def config_hash(config: Mapping[str, Any]) -> str:
    """First 16 hex digits of the SHA-256 of the canonical JSON of ``config``."""
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()[:16]


def run_key(task_key: str, method: str, config_hash: str, seed: int) -> str:
    """Deterministic key of one grid cell: first 16 hex digits of SHA-256 over its identity."""
    identity = canonical_json([task_key, method, config_hash, int(seed)])
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]


def database_error(err: sqlite3.Error, path: Path) -> UnlearnlabError:
    """A clear error for an SQLite failure on the results database at ``path``: a full disk, or a file that
    is not (or no longer) an SQLite database."""
    text = str(err)
    if "full" in text:
        return UnlearnlabError(f"No space left on the device while writing {path} ({text}): free some space and "
                               "re-run the same command; the run resumes.")
    return UnlearnlabError(
        f"{path} is not a readable unlearnlab results database ({text}). Move it away (e.g. `mv {path} "
        f"{path}.bad`) and re-run the same command: the rows it held are computed again.")


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    """A ``runs`` row as a dict whose ``*_json`` columns are decoded under their short names."""
    out = dict(row)
    for name in JSON_COLUMNS:
        out[name] = json.loads(out.pop(f"{name}_json"))
    return out


class ResultStore:
    """The ``runs`` table of ``results.sqlite``; ``path`` is the output folder or the ``.sqlite`` file itself.

    Only one process may write at a time; any number may read. Usable as a context manager (closes on exit).
    """

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        self.path = path if path.suffix == ".sqlite" else path / FILENAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.executescript(_SCHEMA)
            self._conn.execute("SELECT run_key, status FROM runs LIMIT 1").fetchall()
        except sqlite3.DatabaseError as err:
            self._conn.close()
            raise database_error(err, self.path) from None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed on success, rolled back on any exception."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    def start(
        self,
        *,
        task_key: str,
        protocol: str,
        method: str,
        seed: int,
        config: Mapping[str, Any],
        split_hash: str,
        env: Mapping[str, Any] | None = None,
    ) -> str:
        """Insert (or reset) the row of one grid cell with status ``running``; returns its run key.

        ``protocol`` is ``"<name> v<version>"``; ``config`` holds the method hyperparameters; ``env`` defaults to
        :func:`unlearnlab.utils.environment`.
        """
        chash = config_hash(config)
        key = run_key(task_key, method, chash, seed)
        params = {
            "run_key": key,
            "task_key": task_key,
            "protocol": protocol,
            "method": method,
            "seed": int(seed),
            "config_json": canonical_json(config),
            "config_hash": chash,
            "split_hash": split_hash,
            "env_json": canonical_json(environment() if env is None else env),
            "created": time.time(),
        }
        with self._transaction() as conn:
            conn.execute(_UPSERT, params)
        return key

    def finish(
        self,
        run_key: str,
        status: str,
        metrics: Mapping[str, Any],
        definitions: Mapping[str, str],
        stats: Mapping[str, Any],
        error: str | None = None,
    ) -> None:
        """Record the outcome of a started run in one transaction (all fields or none)."""
        if status not in FINAL_STATUSES:
            raise UnlearnlabError(
                f"Run status {status!r} is not final; use one of {', '.join(FINAL_STATUSES)}."
            )
        params = {
            "run_key": run_key,
            "status": status,
            "metrics_json": canonical_json(metrics),
            "definitions_json": canonical_json(definitions),
            "stats_json": canonical_json(stats),
            "error": error,
            "finished": time.time(),
        }
        with self._transaction() as conn:
            if conn.execute(_FINISH, params).rowcount != 1:
                raise UnlearnlabError(f"No run {run_key!r} in {self.path}; call start() before finish().")

    def get(self, run_key: str) -> dict[str, Any] | None:
        """The decoded row of ``run_key``, or ``None``."""
        row = self._conn.execute("SELECT * FROM runs WHERE run_key = ?", (run_key,)).fetchone()
        return None if row is None else _decode(row)

    def is_complete(self, run_key: str) -> bool:
        """True when the run finished as ``done`` or ``diverged`` (``running`` and ``failed`` runs are re-run)."""
        row = self._conn.execute("SELECT status FROM runs WHERE run_key = ?", (run_key,)).fetchone()
        return row is not None and row["status"] in COMPLETE_STATUSES

    def rows(
        self, protocol: str | None = None, task_key: str | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        """Decoded rows matching the given filters, in the order their cells were first started."""
        filters = {"protocol": protocol, "task_key": task_key, "status": status}
        where = [f"{column} = :{column}" for column, value in filters.items() if value is not None]
        sql = "SELECT * FROM runs" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY rowid"
        return [_decode(row) for row in self._conn.execute(sql, filters)]

    def delete_incomplete(self) -> int:
        """Delete ``running`` and ``failed`` rows; returns how many were deleted."""
        marks = ", ".join("?" for _ in COMPLETE_STATUSES)
        with self._transaction() as conn:
            return conn.execute(f"DELETE FROM runs WHERE status NOT IN ({marks})", COMPLETE_STATUSES).rowcount
