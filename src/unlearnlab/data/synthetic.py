"""Data of MinNorm-OG's experiments: poisoned sine regression and coloured image copies.

Definitions and the reasons behind them: docs/minnorm_experiments.md, "Data".

- :func:`sine_poisoning` — poisoning: 50 retain points x ~ U[−5π, 5π], y = sin x, and 5 poisoned forget points
  x ~ U[−5π, 5π], y = 1.5; new data per trial, drawn from (seed, component) generators.
- :func:`colour_copy` / :func:`tint` — label erasure's colour copies of a luma image L (gray (L, L, L),
  red (L, 0, 0), green (0, L, 0)) and collapse's tints L·colour/255 with the ten-colour :data:`PALETTE`.
- :func:`erase_data` — label erasure (S2 at digits scale): D_r = gray copies of every pool image, labels
  (class, colour 0); D_f = red copies of a random int(p_color·N) subset ∪ green copies of an independent one
  (labels (class, 1) and (class, 2)); test = gray, red and green copies of the test images.
- :func:`collapse_data` — representation collapse (S3 at digits scale): D_r = every pool image tinted with its
  class colour (weight p/(1+p)); D_f = per class int(p·n_c) images tinted with a uniformly random *other*
  class's colour, content label kept (weight 1/(1+p)); warm-start set = gray copies (L, L, L); test = every test
  image in each of the 10 colours, labelled with the colour index.

Image inputs are pixel-space float32 [N, C, H, W] in [0, 1] with one channel holding the luma L (for scikit-learn
digits L = pixel/16; for RGB datasets convert with :func:`luma` first). Labels of multi-head sets are int64
[N, heads]. Regression targets are float32 (built with the :class:`TensorData` constructor, since
``TensorData.of`` casts labels to int64).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from unlearnlab.data.datasets import load_dataset
from unlearnlab.data.tensors import TensorData
from unlearnlab.utils import numpy_rng

SINE_LOW, SINE_HIGH = -5 * math.pi, 5 * math.pi
#: the poisoned label of every forget point, outside sin's range (the reference scripts pass ±15.708 as the interval)
POISON_VALUE = 1.5

#: label erasure's colour copies: name → (colour label, RGB multipliers of L)
ERASE_COLOURS: dict[str, tuple[int, tuple[float, float, float]]] = {
    "gray": (0, (1.0, 1.0, 1.0)), "red": (1, (1.0, 0.0, 0.0)), "green": (2, (0.0, 1.0, 0.0)),
}
#: collapse palette, class c → colour c (0–255 RGB)
PALETTE: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255),
    (0, 255, 255), (255, 128, 0), (128, 0, 255), (128, 128, 128), (0, 128, 128),
)


def data_hash(*arrays: np.ndarray | torch.Tensor) -> str:
    """First 16 hex digits of the SHA-256 of the arrays' bytes (shapes included): a trial's data identity."""
    h = hashlib.sha256()
    for a in arrays:
        arr = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        h.update(str(arr.shape).encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------------------------ sine


@dataclass
class SineData:
    """One poisoning trial: float32 [n, 1] inputs and targets; ``forget`` holds the poisoned points."""

    retain: TensorData
    forget: TensorData
    seed: int

    @property
    def all(self) -> TensorData:
        return TensorData(torch.cat([self.retain.x, self.forget.x]), torch.cat([self.retain.y, self.forget.y]),
                          torch.cat([self.retain.index, self.forget.index]))

    @property
    def hash(self) -> str:
        return data_hash(self.retain.x, self.retain.y, self.forget.x, self.forget.y)


def sine_poisoning(seed: int, n_retain: int = 50, n_forget: int = 5, poison: float = POISON_VALUE,
                   low: float = SINE_LOW, high: float = SINE_HIGH) -> SineData:
    """Poisoning data of trial ``seed``: retain (x, sin x), forget (x, ``poison``), x ~ U[low, high] independently.

    Reproducible from ``seed`` (generator of component ``"mnog-sine-data"``); retain rows have training-set
    positions 0…n_r−1, forget rows n_r…n_r+n_f−1.
    """
    rng = numpy_rng(seed, "mnog-sine-data")
    xr = rng.uniform(low, high, n_retain)
    xf = rng.uniform(low, high, n_forget)
    def col(a):
        return torch.as_tensor(np.asarray(a, dtype=np.float32))[:, None]
    retain = TensorData(col(xr), col(np.sin(xr)), torch.arange(n_retain))
    forget = TensorData(col(xf), col(np.full(n_forget, poison)), torch.arange(n_forget) + n_retain)
    return SineData(retain, forget, seed)


def sine_grid(n: int = 1000, low: float = SINE_LOW, high: float = SINE_HIGH) -> torch.Tensor:
    """The metric's evaluation grid: ``n`` evenly spaced points of [low, high] as a float32 [n, 1] column."""
    return torch.linspace(low, high, n, dtype=torch.float64).to(torch.float32)[:, None]


# ------------------------------------------------------------------------------------------------ colours


def luma(rgb: torch.Tensor) -> torch.Tensor:
    """PIL "L" luma 0.299R + 0.587G + 0.114B of [N, 3, H, W] images, as [N, 1, H, W]; 1-channel input unchanged."""
    if rgb.shape[1] == 1:
        return rgb
    w = torch.tensor([0.299, 0.587, 0.114], dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return (rgb * w).sum(1, keepdim=True)


def colour_copy(lum: torch.Tensor, colour: str) -> torch.Tensor:
    """Label erasure's gray (L, L, L), red (L, 0, 0) or green (0, L, 0) copies of [N, 1, H, W] luma images."""
    _, mult = ERASE_COLOURS[colour]
    return torch.cat([lum * m for m in mult], dim=1)


def tint(lum: torch.Tensor, colours: torch.Tensor | int) -> torch.Tensor:
    """Collapse tint: L·PALETTE[c]/255 per image (``colours`` one index per image, or one for all)."""
    pal = torch.tensor(PALETTE, dtype=lum.dtype, device=lum.device) / 255.0
    c = torch.as_tensor(colours, device=lum.device).long()
    c = c.expand(len(lum)) if c.ndim == 0 else c
    return lum * pal[c][:, :, None, None]


def _pool(dataset: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """(pool luma, pool labels, test luma, test labels, classes). digits: pool = all 1,442 non-test images."""
    ds = load_dataset(dataset)
    return luma(ds.x_train), ds.y_train, luma(ds.x_test), ds.y_test, ds.num_classes


# ------------------------------------------------------------------------------------------------ erase


@dataclass
class ColouredData:
    """D_r, D_f (labels [N, heads]), named test sets, per-example loss weights of D_r/D_f (None = unweighted)."""

    retain: TensorData
    forget: TensorData
    test: dict[str, TensorData]
    num_classes: int
    heads: tuple[int, ...]
    seed: int
    warm: TensorData | None = None
    retain_weight: float | None = None
    forget_weight: float | None = None
    info: dict[str, int] = field(default_factory=dict)

    @property
    def hash(self) -> str:
        return data_hash(self.retain.x, self.retain.y, self.forget.x, self.forget.y)


def erase_data(seed: int, p_color: float = 0.05, dataset: str = "digits") -> ColouredData:
    """Label-erasure data of trial ``seed`` (heads (classes, 3), labels (class, colour)).

    Red and green forget subsets are independent draws of int(p_color·N) pool positions without replacement
    (generator ``"mnog-erase-forget"``), so an image may appear in both.
    """
    lum, y, lum_test, y_test, classes = _pool(dataset)
    n = len(y)
    k = int(p_color * n)
    rng = numpy_rng(seed, "mnog-erase-forget")
    red = np.sort(rng.choice(n, k, replace=False))
    green = np.sort(rng.choice(n, k, replace=False))

    def labelled(x, labels, colour, index):
        cl = torch.full((len(labels),), ERASE_COLOURS[colour][0], dtype=torch.long)
        return TensorData(x, torch.stack([labels.long(), cl], 1), torch.as_tensor(index, dtype=torch.long))

    retain = labelled(colour_copy(lum, "gray"), y, "gray", np.arange(n))
    fr = labelled(colour_copy(lum[red], "red"), y[red], "red", red + n)
    fg = labelled(colour_copy(lum[green], "green"), y[green], "green", green + 2 * n)
    forget = TensorData(torch.cat([fr.x, fg.x]), torch.cat([fr.y, fg.y]), torch.cat([fr.index, fg.index]))
    test = {c: labelled(colour_copy(lum_test, c), y_test, c, np.full(len(y_test), -1)) for c in ERASE_COLOURS}
    return ColouredData(retain, forget, test, classes, (classes, 3), seed, info={"forget_red": k, "forget_green": k})


# ------------------------------------------------------------------------------------------------ collapse


def collapse_data(seed: int, p: float = 0.1, dataset: str = "digits") -> ColouredData:
    """Representation-collapse data of trial ``seed`` (one head of ``classes``).

    Per class c: int(p·n_c) forget images uniformly within the class (generator ``"mnog-collapse-forget"``),
    each tinted with a colour drawn uniformly from the other classes' colours; all pool images form D_r in their
    class colour. Test sets ``"colour k"``: every test image tinted with colour k, label k (the colour index).
    """
    lum, y, lum_test, y_test, classes = _pool(dataset)
    if classes > len(PALETTE):
        raise ValueError(f"The collapse palette has {len(PALETTE)} colours; {dataset} has {classes} classes.")
    rng = numpy_rng(seed, "mnog-collapse-forget")
    picks, colours = [], []
    ynp = y.numpy()
    for c in range(classes):
        members = np.flatnonzero(ynp == c)
        chosen = np.sort(rng.choice(members, int(p * len(members)), replace=False))
        other = rng.integers(0, classes - 1, len(chosen))
        picks.append(chosen)
        colours.append(other + (other >= c))  # uniform over the other classes
    fpos = np.concatenate(picks)
    fcol = torch.as_tensor(np.concatenate(colours), dtype=torch.long)
    n = len(y)
    retain = TensorData(tint(lum, y), y.long(), torch.arange(n))
    forget = TensorData(tint(lum[fpos], fcol), y[fpos].long(), torch.as_tensor(fpos + n, dtype=torch.long))
    warm = TensorData(colour_copy(lum, "gray"), y.long(), torch.arange(n))
    test = {f"colour {k}": TensorData(tint(lum_test, k), torch.full((len(y_test),), k, dtype=torch.long),
                                      torch.full((len(y_test),), -1, dtype=torch.long)) for k in range(classes)}
    data = ColouredData(retain, forget, test, classes, (classes,), seed, warm=warm,
                        retain_weight=p / (1 + p), forget_weight=1 / (1 + p),
                        info={"forget": len(fpos)})
    return data
