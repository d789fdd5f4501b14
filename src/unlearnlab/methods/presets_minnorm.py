"""MinNorm-OG (minnorm_og.md §3) and the paper's own baselines ``mnog/…`` (§5), all in the paper's loop (§4).

Every preset: AdamW(η, betas (0.9, 0.999), eps 1e−8, weight_decay 0.01 — torch's default, active in every
reference method, set explicitly), one epoch = one pass over the forget batches, each step on the next batch of
the accessible retain subset D′_r (``p_retain``), loss J = Σ_heads CE on logits clamped to ±``logit_clamp``
(``loss_type="regression"``: MSE). ``defaults`` are the scaled digits values (§7, S2: B 32, n_pert 20, η 1e−3,
λ_reg 0.1, γ_reg 0.8, T_GD 0, T 5) with p_retain 1 (library use; the ``mnog-*`` protocols pass theirs);
``reference`` is the CIFAR-10 erase setting (B 256, n_pert 50, p_retain 0.01, T 2).
Aliases (the issue's spellings; README naming rule): ``ngd`` → ``mnog/ngd``, ``ridge`` → ``mnog/ridge``,
``npo`` → ``mnog/npo``. ``ga``, ``gd``, ``retrain``, ``scrub``, ``salun``, ``l1-sparse`` stay the baselines'.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from unlearnlab.errors import UnlearnlabError
from unlearnlab.methods.base import RunContext, UnlearnData
from unlearnlab.methods.iterative import IterativeUnlearner
from unlearnlab.methods.objectives import Objective
from unlearnlab.methods.registry import register_method
from unlearnlab.methods.rules.min_norm import MinNorm, PaperDistill, PaperLoss, PaperNPO, PaperWrongLabel

MNOG = "MinNorm-OG (Block, Mokhtari, Shakkottai, NeurIPS 2025, arXiv 2505.22601)"

LOOP_KEYS: dict[str, Any] = {
    "epochs": 5, "lr": 1e-3, "weight_decay": 0.01, "batch_size": 32, "p_retain": 1.0, "loss_type": "classifier",
    "logit_clamp": 30.0,
}
MINNORM_KEYS: dict[str, Any] = {
    "reg_coef": 0.1, "reg_coef_decay": 0.8, "proj_pd": 1, "num_gd_epochs": 0, "grad_sample_size": 20,
    "quota_fallback": "uniform", "projection_dtype": "float64",
}
REFERENCE = {"epochs": 2, "batch_size": 256, "p_retain": 0.01}


@dataclass
class PaperLoopUnlearner(IterativeUnlearner):
    """An :class:`IterativeUnlearner` whose stats include the ``min_norm`` rule's (projections, Jacobian columns)."""

    def run(self, model, data: UnlearnData, ctx: RunContext) -> dict[str, Any]:
        stats = super().run(model, data, ctx)
        stats.update(getattr(self.rule, "stats", {}))
        return stats


def loop(h: dict[str, Any], rule: MinNorm, forget: Objective | None = None,
         retain: Objective | None = None) -> PaperLoopUnlearner:
    """The §4 loop with AdamW(η, wd) and J as the retain objective unless given."""
    return PaperLoopUnlearner(
        forget=forget, retain=retain or PaperLoss(h["loss_type"], h["logit_clamp"]), rule=rule, epochs=h["epochs"],
        lr=h["lr"], optimizer="adamw", weight_decay=h["weight_decay"], betas=(0.9, 0.999),
        batch_size=h["batch_size"], forget_batch_size=h["batch_size"],
    )


@register_method(
    "minnorm-og", family="— | J on D′_r × min_norm + AdamW", paper=MNOG,
    summary="Shrink θ toward the span of retain output gradients (θ ← θ − λ(θ − P_Aθ), λ decaying per "
            "projection), then an AdamW step on J(B_r); one step per forget batch.",
    defaults={**LOOP_KEYS, **MINNORM_KEYS}, reference={**REFERENCE, "grad_sample_size": 50},
)
def _minnorm_og(h: dict[str, Any], num_classes: int) -> PaperLoopUnlearner:
    rule = MinNorm(reg_coef=h["reg_coef"], reg_coef_decay=h["reg_coef_decay"], proj_pd=h["proj_pd"],
                   num_gd_epochs=h["num_gd_epochs"], grad_sample_size=h["grad_sample_size"], p_retain=h["p_retain"],
                   quota_fallback=h["quota_fallback"], loss_type=h["loss_type"], projection_dtype=h["projection_dtype"])
    return loop(h, rule)


# ------------------------------------------------------------------------------------------------ §5 baselines


@register_method(
    "mnog/gd", family="— | J_r × paper loop (AdamW)", paper=MNOG, forgets=False,
    summary="Gradient descent on J(B_r) in the paper's loop: one AdamW step per forget batch.",
    defaults=LOOP_KEYS, reference=REFERENCE,
)
def _mnog_gd(h: dict[str, Any], num_classes: int) -> PaperLoopUnlearner:
    return loop(h, MinNorm(project=False, p_retain=h["p_retain"], loss_type=h["loss_type"]))


@register_method(
    "mnog/ga", family="−J_f | — × paper loop (AdamW)", paper=MNOG,
    summary="Gradient ascent: −J(B_f) on each forget batch, AdamW.",
    defaults=LOOP_KEYS, reference=REFERENCE,
)
def _mnog_ga(h: dict[str, Any], num_classes: int) -> PaperLoopUnlearner:
    rule = MinNorm(project=False, retain_weight=0.0, p_retain=h["p_retain"], loss_type=h["loss_type"])
    return loop(h, rule, forget=PaperLoss(h["loss_type"], h["logit_clamp"], sign=-1.0))


@register_method(
    "mnog/ngd", family="— | J_r × paper loop + gradient noise", paper=MNOG, forgets=False, aliases=("ngd",),
    summary="Noisy GD: J(B_r), then N(0, σ²) added to every gradient entry before the AdamW step.",
    defaults={**LOOP_KEYS, "noise_std": 0.1}, reference=REFERENCE,
)
def _mnog_ngd(h: dict[str, Any], num_classes: int) -> PaperLoopUnlearner:
    return loop(h, MinNorm(project=False, grad_noise=h["noise_std"], p_retain=h["p_retain"], loss_type=h["loss_type"]))


@register_method(
    "mnog/ridge", family="— | J_r + λ‖θ‖² × paper loop (λ decaying per step)", paper=MNOG, forgets=False,
    aliases=("ridge",),
    summary="J(B_r) + λ·Σθ², λ_0 = reg_coef, λ ← reg_coef_decay·λ after every step; AdamW.",
    defaults={**LOOP_KEYS, "reg_coef": 0.1, "reg_coef_decay": 0.8}, reference=REFERENCE,
)
def _mnog_ridge(h: dict[str, Any], num_classes: int) -> PaperLoopUnlearner:
    rule = MinNorm(project=False, ridge=h["reg_coef"], ridge_decay=h["reg_coef_decay"], p_retain=h["p_retain"],
                   loss_type=h["loss_type"])
    return loop(h, rule)


@register_method(
    "mnog/ngp", family="−λ_GA·J_f | J_r × paper loop (AdamW)", paper=MNOG,
    summary="NegGrad+: J(B_r) − λ_GA·J(B_f) per step, AdamW.",
    defaults={**LOOP_KEYS, "forget_weight": 0.1}, reference=REFERENCE,
)
def _mnog_ngp(h: dict[str, Any], num_classes: int) -> PaperLoopUnlearner:
    rule = MinNorm(project=False, p_retain=h["p_retain"], loss_type=h["loss_type"])
    return loop(h, rule, forget=PaperLoss(h["loss_type"], h["logit_clamp"], sign=-h["forget_weight"]))


@register_method(
    "mnog/l1-sparse", family="— | J_r + λ‖θ‖₁ × paper loop (λ by epoch)", paper=MNOG, forgets=False,
    summary="J(B_r) + λ·Σ|θ|; λ = reg_coef at the first step, then (2 − 2e/T)·reg_coef after a step in epoch e.",
    defaults={**LOOP_KEYS, "reg_coef": 1e-3}, reference=REFERENCE,
)
def _mnog_l1(h: dict[str, Any], num_classes: int) -> PaperLoopUnlearner:
    return loop(h, MinNorm(project=False, l1=h["reg_coef"], p_retain=h["p_retain"], loss_type=h["loss_type"]))


@register_method(
    "mnog/retrain", family="— | J_r from a fresh init × paper loop (AdamW)", paper=MNOG, forgets=False,
    summary="Budget-matched retrain: every parameter to PyTorch's default init, then GD on J(B_r) for T epochs.",
    defaults=LOOP_KEYS, reference=REFERENCE,
)
def _mnog_retrain(h: dict[str, Any], num_classes: int) -> PaperLoopUnlearner:
    return loop(h, MinNorm(project=False, reinit=True, p_retain=h["p_retain"], loss_type=h["loss_type"]))


@register_method(
    "mnog/npo", family="NPO on D_f | — × paper loop (AdamW)", paper=MNOG, aliases=("npo",),
    summary="NPO: Σ_heads (2/β)·mean log(1 + (π_θ(y|x)/π_θ*(y|x))^β) on each forget batch, β = reg_coef, "
            "π the softmax probability of the true label, teacher θ* frozen in eval mode; AdamW.",
    defaults={**LOOP_KEYS, "reg_coef": 0.1}, reference=REFERENCE,
)
def _mnog_npo(h: dict[str, Any], num_classes: int) -> PaperLoopUnlearner:
    if h["loss_type"] != "classifier":
        raise UnlearnlabError("mnog/npo needs a classifier (label probabilities).")
    rule = MinNorm(project=False, retain_weight=0.0, p_retain=h["p_retain"], loss_type=h["loss_type"])
    return loop(h, rule, forget=PaperNPO(beta=h["reg_coef"], logit_clamp=h["logit_clamp"]))


@register_method(
    "mnog/scrub", family="−λ_GA·KL | J_r + λ_reg·KL × paper loop, alternating by epoch parity", paper=MNOG,
    summary="SCRUB variant: epoch t is a max-epoch (−λ_GA·Σ_heads KL(p_teacher ‖ p_student) on B_f) iff t is "
            "odd and t < T − T_GD, else a min-epoch (J(B_r) + λ_reg·KL on B_r); teacher θ* frozen in eval mode.",
    defaults={**LOOP_KEYS, "forget_weight": 0.1, "reg_coef": 0.1, "num_gd_epochs": 0, "teacher_train_mode": False},
    reference=REFERENCE,
)
def _mnog_scrub(h: dict[str, Any], num_classes: int) -> PaperLoopUnlearner:
    if h["loss_type"] != "classifier":
        raise UnlearnlabError("mnog/scrub needs a classifier (KL between softmax outputs).")
    train_mode = h["teacher_train_mode"]
    rule = MinNorm(project=False, alternate=True, num_gd_epochs=h["num_gd_epochs"], p_retain=h["p_retain"],
                   loss_type=h["loss_type"], compat=("teacher_train_mode",) if train_mode else ())
    forget = PaperDistill(kl_weight=-h["forget_weight"], ce_weight=0.0, logit_clamp=h["logit_clamp"],
                          teacher_train_mode=train_mode)
    retain = PaperDistill(kl_weight=h["reg_coef"], ce_weight=1.0, logit_clamp=h["logit_clamp"],
                          teacher_train_mode=train_mode)
    return loop(h, rule, forget=forget, retain=retain)


@register_method(
    "mnog/salun", family="λ_GA·wrong-label CE_f | J_r × paper loop + median-threshold mask", paper=MNOG,
    summary="SalUn variant: mask = |Σ_batches ∇J(B_f)| at θ* ≥ its lower median (train mode, buffers restored), "
            "applied exactly (frozen entries and AdamW state bit-identical, no decay on them); loss "
            "J(B_r) + λ_GA·Σ_heads CE(f(x_f), wrong label drawn uniformly per example per step).",
    defaults={**LOOP_KEYS, "forget_weight": 0.1}, reference=REFERENCE,
)
def _mnog_salun(h: dict[str, Any], num_classes: int) -> PaperLoopUnlearner:
    if h["loss_type"] != "classifier":
        raise UnlearnlabError("mnog/salun needs a classifier (wrong labels).")
    rule = MinNorm(project=False, median_mask=True, p_retain=h["p_retain"], loss_type=h["loss_type"])
    return loop(h, rule, forget=PaperWrongLabel(weight=h["forget_weight"], logit_clamp=h["logit_clamp"]))
