"""Read TOFU's own files (or a generated dataset written with :meth:`TofuData.write`) from a local folder.

Each ``<split>.json`` / ``<split>.jsonl`` file becomes split ``<split>``: TOFU ships them as JSON lines (one
record per line, e.g. ``forget10.json``, ``forget10_perturbed.json``, ``retain_perturbed.json``,
``real_authors_perturbed.json``); a JSON array of records is read too. ``idontknow.jsonl`` (one refusal per line,
plain text or a JSON string) is the refusal pool of the IDK objectives; without it the generator's pool is used.
The data hash is the sha256 of every file's name and bytes, so a changed file changes every cache key.
Nothing is downloaded: the folder must exist.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from unlearnlab.errors import UnlearnlabError
from unlearnlab.language.generator import refusals as generated_refusals
from unlearnlab.language.records import QARecord, TofuData

REFUSALS_FILE = "idontknow.jsonl"


def _records(path: Path) -> tuple[QARecord, ...]:
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as err:
            raise UnlearnlabError(f"{path}: not valid JSON ({err}).") from err
        return tuple(QARecord.from_json(row, f"{path}, record {i}") for i, row in enumerate(rows))
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise UnlearnlabError(f"{path}, line {n}: not a JSON record ({err}). TOFU files hold one JSON object "
                                  "per line (or one JSON array).") from err
        out.append(QARecord.from_json(row, f"{path}, line {n}"))
    return tuple(out)


def _refusals(path: Path) -> tuple[str, ...]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith('"'):
            try:
                line = json.loads(line)
            except json.JSONDecodeError as err:
                raise UnlearnlabError(f"{path}: a quoted refusal is not a JSON string: {line!r}.") from err
        out.append(str(line))
    if not out:
        raise UnlearnlabError(f"{path} holds no refusal: write one per line.")
    return tuple(out)


def load_tofu(folder: str | Path) -> TofuData:
    """Every split file of ``folder`` (see module docstring)."""
    root = Path(folder)
    if not root.is_dir():
        raise UnlearnlabError(f"No TOFU data folder at {str(root)!r}: give the local folder holding TOFU's JSON files "
                              "(full.json, forget10.json, ...). Data are never downloaded.")
    files = sorted(p for p in root.iterdir() if p.suffix in (".json", ".jsonl") and p.name != REFUSALS_FILE)
    if not files:
        raise UnlearnlabError(f"{str(root)!r} holds no .json or .jsonl split file: TOFU's files are named after their "
                              "split (forget10.json, retain90.json, retain_perturbed.json, ...).")
    digest = hashlib.sha256()
    splits = {}
    for path in files:
        if path.stem in splits:
            raise UnlearnlabError(f"Split {path.stem!r} is in {path.stem}.json and {path.stem}.jsonl: keep one.")
        splits[path.stem] = _records(path)
    refusal_path = root / REFUSALS_FILE
    for path in [*files, *([refusal_path] if refusal_path.is_file() else [])]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    refusals = _refusals(refusal_path) if refusal_path.is_file() else generated_refusals()
    authors = tuple(dict.fromkeys(r.author for r in splits.get("full", ()) if r.author is not None))
    return TofuData(splits=splits, refusals=refusals, hash=digest.hexdigest()[:16], source=f"TOFU files in {root}",
                    authors=authors, info={"folder": str(root), "refusals_file": refusal_path.is_file()})
