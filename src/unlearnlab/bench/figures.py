"""What every figure module shares: the output formats, saving a figure as PNG and PDF, file-name helpers."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

FORMATS = ("png", "pdf")


def save_figure(fig: Any, path: str | Path) -> list[Path]:
    """Save ``fig`` as ``path``.png and ``path``.pdf (a given .png/.pdf suffix is replaced); close it."""
    base = Path(path)
    if base.suffix.lower() in (".png", ".pdf"):
        base = base.with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in FORMATS:
        target = base.parent / f"{base.name}.{fmt}"
        fig.savefig(target, dpi=150, bbox_inches="tight")
        paths.append(target)
    return paths


def slug(text: Any) -> str:
    """``text`` reduced to a file-name-safe token."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_")


def digest(text: Any) -> str:
    """The first 8 hex digits of the SHA-256 of ``text``: a short, stable file-name suffix."""
    return hashlib.sha256(str(text).encode()).hexdigest()[:8]
