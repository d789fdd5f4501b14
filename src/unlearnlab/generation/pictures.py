"""Pictures of generated samples (matplotlib, Agg; docs/generation.md, "Pictures").

* :func:`save_sample_grid`: one model's samples, a row per class, the forgotten class's row marked (red label and
  frame), saved as PNG;
* :func:`save_comparison`: several models side by side (original, Retrain, each method), one panel per model with
  the same layout, so a reader judges by eye whether the forgotten class is gone and the others intact.

Figures are built with :class:`matplotlib.figure.Figure` (no pyplot state, no window) and written atomically.
Images are [C, k, channels, H, W] tensors in [0, 1] (:attr:`GenerationEvaluation.grid`).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from unlearnlab.errors import UnlearnlabError
from unlearnlab.utils import atomic_write_bytes

MARK = "#d62728"


def mosaic(grid: torch.Tensor, pad: int = 1) -> np.ndarray:
    """[C, k, ch, H, W] images → one [C·(H+pad), k·(W+pad), 3] array (grey images repeated to RGB), rows = classes."""
    if grid.ndim != 5 or grid.shape[2] not in (1, 3):
        raise UnlearnlabError(f"A sample grid is [classes, k, channels (1 or 3), H, W], got {tuple(grid.shape)}.")
    c, k, ch, h, w = grid.shape
    img = grid.detach().float().clamp(0, 1).cpu()
    if ch == 1:
        img = img.expand(c, k, 3, h, w)
    canvas = torch.ones(c, h + pad, k, w + pad, 3)
    canvas[:, :h, :, :w] = img.permute(0, 3, 1, 4, 2)
    return canvas.reshape(c * (h + pad), k * (w + pad), 3).numpy()


def _panel(ax, grid: torch.Tensor, forget_class: int | None, title: str, class_names: Sequence[str] | None,
           labels: bool) -> None:
    c, k, _, h, w = grid.shape
    ax.imshow(mosaic(grid), interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    names = list(class_names) if class_names is not None else [str(i) for i in range(c)]
    ax.set_yticks([(h + 1) * i + h / 2 for i in range(c)])
    ax.set_yticklabels(names if labels else [""] * c, fontsize=7)
    ax.tick_params(length=0)
    if forget_class is not None:
        if labels:
            ax.get_yticklabels()[forget_class].set_color(MARK)
        ax.add_patch(Rectangle((-0.5, (h + 1) * forget_class - 0.5), k * (w + 1), h + 1, fill=False,
                               edgecolor=MARK, linewidth=1.5))


def _write(fig: Figure, path: str | Path) -> Path:
    path = Path(path).with_suffix(".png")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=150, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return path


def save_sample_grid(grid: torch.Tensor, path: str | Path, forget_class: int | None = None, title: str = "",
                     class_names: Sequence[str] | None = None) -> Path:
    """Save one model's samples (a row per class, the forgotten class marked) as ``path`` (.png)."""
    c, k = grid.shape[:2]
    fig = Figure(figsize=(max(2.0, 0.35 * k + 0.8), max(2.0, 0.35 * c + 0.5)))
    _panel(fig.subplots(), grid, forget_class, title, class_names, labels=True)
    return _write(fig, path)


def save_comparison(grids: Mapping[str, torch.Tensor], path: str | Path, forget_class: int | None = None,
                    title: str = "", class_names: Sequence[str] | None = None) -> Path:
    """Save one figure with a panel per model (``grids``: model name → [C, k, ch, H, W], in display order)."""
    if not grids:
        raise UnlearnlabError("save_comparison needs at least one model's samples.")
    shapes = {name: tuple(g.shape[:2]) for name, g in grids.items()}
    if len(set(shapes.values())) != 1:
        raise UnlearnlabError(f"Every panel needs the same classes × samples, got {shapes}.")
    c, k = next(iter(shapes.values()))
    n = len(grids)
    fig = Figure(figsize=(n * max(1.6, 0.3 * k) + 0.6, max(2.0, 0.3 * c + 0.8)))
    axes = np.atleast_1d(fig.subplots(1, n))
    for i, (ax, (name, grid)) in enumerate(zip(axes, grids.items())):
        _panel(ax, grid, forget_class, name, class_names, labels=i == 0)
    if title:
        fig.suptitle(title, fontsize=10)
    return _write(fig, path)
