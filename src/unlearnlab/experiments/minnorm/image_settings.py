"""Settings and grids of MinNorm-OG's image experiments, label erasure and representation collapse
(docs/minnorm_experiments.md, "Settings" and "Grids").

Full scale = the paper's CIFAR-10 settings and search spaces; quick scale = scikit-learn digits, ``bn_cnn``,
one or two (p_retain, T) settings and, per method and hyperparameter, a subset of the full grid of the same
(p_retain, T) (the values left out, and why, are listed in docs/minnorm_experiments.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from unlearnlab.experiments.minnorm.common import IMAGE_METHODS, Grid

#: hyperparameters shown in the tables' "configuration" columns
IMAGE_KEYS = ("lr", "reg_coef", "reg_coef_decay", "forget_weight", "noise_std", "num_gd_epochs", "proj_pd")


def image_grid(lrs: Sequence[float], reg_minnorm: Sequence[float], reg_ridge: Sequence[float],
               reg_l1: Sequence[float], reg_npo: Sequence[float], reg_scrub: Sequence[float],
               decays: Sequence[float], ga: Sequence[float], sigmas: Sequence[float],
               t_gd: Sequence[int]) -> Grid:
    """The active hyperparameters of every image method (T_Proj 1): η for all; NGP, SCRUB, SalUn + λ_GA
    (``forget_weight``); NGD + σ; Ridge + λ_reg, γ_reg; ℓ1, NPO + λ_reg; SCRUB + λ_reg, T_GD; MinNorm-OG + λ_reg,
    γ_reg, T_GD."""
    return {
        "mnog/retrain": {"lr": lrs}, "mnog/gd": {"lr": lrs}, "mnog/ga": {"lr": lrs},
        "mnog/ngp": {"lr": lrs, "forget_weight": ga}, "mnog/ngd": {"lr": lrs, "noise_std": sigmas},
        "mnog/ridge": {"lr": lrs, "reg_coef": reg_ridge, "reg_coef_decay": decays},
        "mnog/l1-sparse": {"lr": lrs, "reg_coef": reg_l1}, "mnog/npo": {"lr": lrs, "reg_coef": reg_npo},
        "mnog/scrub": {"lr": lrs, "forget_weight": ga, "reg_coef": reg_scrub, "num_gd_epochs": t_gd},
        "mnog/salun": {"lr": lrs, "forget_weight": ga},
        "minnorm-og": {"lr": lrs, "reg_coef": reg_minnorm, "reg_coef_decay": decays, "num_gd_epochs": t_gd,
                       "proj_pd": (1,)},
    }


@dataclass
class ImageSetting:
    """One scale of the label-erasure (``kind="erase"``) or collapse (``kind="collapse"``) experiment."""

    name: str
    kind: str
    dataset: str
    model: str
    p: float  # erase: p_color; collapse: forget fraction per class
    settings: tuple[tuple[float, int], ...]  # (p_retain, T)
    grids: Callable[[float, int], Grid]
    train_lr: float = 0.03
    train_momentum: float = 0.9
    train_wd: float = 5e-4
    train_batch: int = 64
    train_epochs: int = 60
    step_size: int = 30
    warm_epochs: int = 0
    batch_size: int = 32
    n_pert: int = 20
    methods: tuple[str, ...] = IMAGE_METHODS
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    def task_key(self, p_retain: float, t: int) -> str:
        return f"{self.name}/{self.dataset}/p{self.p:g}/epochs{self.train_epochs}/p_retain{p_retain:g}/T{t}"

    @property
    def reference_key(self) -> str:
        return f"{self.name}/{self.dataset}/p{self.p:g}/epochs{self.train_epochs}/reference"


# ------------------------------------------------------------------------------------------------ grids


def _erase_full_grid(p_retain: float, t: int) -> Grid:
    """CIFAR-10 T = 2, p_retain 0.01 (the reference's shipped grid); other settings: the same with
    T_GD ∈ {0, 1, 2} ∩ [0, T − 1]."""
    t_gd = (0,) if (t, p_retain) == (2, 0.01) else tuple(v for v in (0, 1, 2) if v <= t - 1)
    return image_grid(lrs=(1e-3, 1e-4, 1e-5, 1e-6), reg_minnorm=(1e-3, 1e-2, 5e-2, 1e-1),
                      reg_ridge=(1e-3, 1e-2, 5e-2, 1e-1), reg_l1=(1e-3, 1e-2, 5e-2, 1e-1),
                      reg_npo=(1e-3, 1e-2, 5e-2, 1e-1), reg_scrub=(1e-3, 1e-2, 5e-2, 1e-1), decays=(0.2, 0.4, 0.8),
                      ga=(1e-3, 1e-2, 1e-1), sigmas=(0.1, 1.0, 10.0), t_gd=t_gd)


def _collapse_full_grid(p_retain: float, t: int) -> Grid:
    """The reference's shipped collapse grids per (T, p_retain)."""
    if t == 5 and p_retain == 0.001:
        lrs, regs, t_gd = (1e-3, 5e-4, 1e-4), (0.1, 0.2, 0.5, 0.9), (0, 1, 2)
    elif t == 5:
        lrs, regs, t_gd = (5e-3, 1e-3, 5e-4, 1e-4), (0.01, 0.1, 0.5, 0.9), (1, 2, 3)
    elif p_retain == 0.001:
        lrs, regs, t_gd = (1e-3, 5e-4, 1e-4), (0.1, 0.2, 0.5, 0.9), (3, 5, 7)
    else:
        lrs, regs, t_gd = (5e-3, 1e-3, 5e-4, 1e-4), (0.01, 0.1, 0.5, 0.9), (3, 5, 7)
    return image_grid(lrs=lrs, reg_minnorm=regs, reg_ridge=regs, reg_l1=regs, reg_npo=regs, reg_scrub=regs,
                      decays=(0.2, 0.4, 0.8), ga=(1e-3, 1e-2, 1e-1), sigmas=(0.1, 1.0, 10.0), t_gd=t_gd)


def _erase_quick_grid(p_retain: float, t: int) -> Grid:
    """Subset of :func:`_erase_full_grid` at the same (p_retain, T): the two largest η, two values of each method's
    strength (λ_reg, λ_GA, σ), every γ_reg and T_GD of the paper (docs/minnorm_experiments.md, "Grids")."""
    t_gd = tuple(v for v in (0, 1, 2) if v <= t - 1)
    return image_grid(lrs=(1e-3, 1e-4), reg_minnorm=(5e-2, 1e-1), reg_ridge=(1e-2, 1e-1), reg_l1=(1e-3, 1e-2),
                      reg_npo=(1e-1,), reg_scrub=(1e-1,), decays=(0.2, 0.4, 0.8), ga=(1e-2, 1e-1), sigmas=(0.1, 1.0),
                      t_gd=t_gd)


def _collapse_quick_grid(p_retain: float, t: int) -> Grid:
    """Subset of :func:`_collapse_full_grid` at the same (p_retain, T), by the rule of :func:`_erase_quick_grid`."""
    t_gd = _collapse_full_grid(p_retain, t)["minnorm-og"]["num_gd_epochs"]
    return image_grid(lrs=(5e-3, 1e-3), reg_minnorm=(0.5, 0.9), reg_ridge=(0.01, 0.1), reg_l1=(0.01, 0.1),
                      reg_npo=(0.1,), reg_scrub=(0.1,), decays=(0.2, 0.4, 0.8), ga=(1e-2, 1e-1), sigmas=(0.1, 1.0),
                      t_gd=t_gd)


def erase_setting(quick: bool) -> ImageSetting:
    """Label erasure: quick = digits colour copies at one setting; full = the paper's CIFAR-10 settings."""
    if quick:
        return ImageSetting("mnog-erase-digits", "erase", "digits", "bn_cnn", 0.05, ((0.05, 5),), _erase_quick_grid)
    return ImageSetting("mnog-erase-cifar10", "erase", "cifar10", "resnet18", 0.01,
                        tuple((p, t) for p in (0.01, 0.001) for t in (1, 2, 5, 10)), _erase_full_grid,
                        train_batch=256, train_epochs=100, step_size=50, batch_size=256, n_pert=50)


def collapse_setting(quick: bool) -> ImageSetting:
    """Representation collapse: quick = tinted digits at T = 10; full = the paper's CIFAR-10 settings."""
    if quick:
        return ImageSetting("mnog-collapse-digits", "collapse", "digits", "bn_cnn", 0.1, ((0.05, 10), (0.2, 10)),
                            _collapse_quick_grid, step_size=30, warm_epochs=10)
    return ImageSetting("mnog-collapse-cifar10", "collapse", "cifar10", "resnet18", 0.01,
                        ((0.001, 5), (0.001, 10), (0.001, 15), (0.01, 5), (0.01, 10)), _collapse_full_grid,
                        train_batch=256, train_epochs=50, step_size=20, warm_epochs=20, batch_size=256, n_pert=50)
