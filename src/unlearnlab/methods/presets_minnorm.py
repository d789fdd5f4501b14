"""MinNorm-OG and the paper's own baselines ``mnog/…``, all in the paper's loop (docs/methods.md, "MinNorm-OG and
the paper's own baselines": its math, loop and step order, presets and defaults).

Every preset: AdamW(η, betas (0.9, 0.999), eps 1e−8, weight_decay 0.01 — torch's default, active in every
reference method, set explicitly), one epoch = one pass over the forget batches, each step on the next batch of
the accessible retain subset D′_r (``p_retain``), loss J = Σ_heads CE on logits clamped to ±``logit_clamp``
(``loss_type="regression"``: MSE). ``defaults`` are the scaled digits values (setting S2 of
docs/minnorm_experiments.md: B 32, n_pert 20, η 1e−3, λ_reg 0.1, γ_reg 0.8, T_GD 0, T 5) with p_retain 1
(library use; the ``mnog-*`` protocols pass theirs); ``reference`` is the CIFAR-10 erase setting (B 256,
n_pert 50, p_retain 0.01, T 2).
Aliases (short spellings of the canonical names): ``ngd`` → ``mnog/ngd``, ``ridge`` → ``mnog/ridge``,
``npo`` → ``mnog/npo``. ``ga``, ``gd``, ``retrain``, ``scrub``, ``salun``, ``l1-sparse`` stay the baselines'.
"""

from __future__ import annotations

from typing import Any

from unlearnlab.errors import UnlearnlabError
from unlearnlab.methods.method import Derived, compose
from unlearnlab.methods.minnorm_objectives import PaperDistill, PaperLoss, PaperNPO, PaperWrongLabel
from unlearnlab.methods.modifiers.gradients import GradientNoise
from unlearnlab.methods.modifiers.masking import MedianMask
from unlearnlab.methods.modifiers.penalties import Penalty
from unlearnlab.methods.modifiers.projection import Projection
from unlearnlab.methods.modifiers.state import Reinitialise, RetainSubset
from unlearnlab.methods.optimization import Optimization
from unlearnlab.methods.registry import register
from unlearnlab.methods.rules.min_norm import MinNormLoop

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


def _adamw(h: dict[str, Any]) -> Optimization:
    """AdamW(η, betas (0.9, 0.999), wd), forget batches of the retain batch size."""
    return Optimization(epochs=h["epochs"], lr=h["lr"], optimizer="adamw", weight_decay=h["weight_decay"],
                        betas=(0.9, 0.999), batch_size=h["batch_size"], forget_batch_size=h["batch_size"])


OPTIMIZATION = Derived(("epochs", "lr", "weight_decay", "batch_size"), _adamw)
#: J with its clamp (the retain objective of every preset, and −J / wrong-label forget objectives)
J = Derived(("loss_type", "logit_clamp"), lambda h: PaperLoss(h["loss_type"], h["logit_clamp"]))
SUBSET = Derived(("p_retain",), lambda h: RetainSubset(h["p_retain"]))


def loop(forget: Any = None, retain: Any = J, rule: Any = None, modifiers: tuple = (), **keys: Any):
    """A method in the paper's loop: AdamW, D′_r of ``p_retain``, J as the retain objective unless given."""
    return compose(forget=forget, retain=retain, rule=rule or MinNormLoop(), modifiers=[SUBSET, *modifiers],
                   optimization=OPTIMIZATION, **{**LOOP_KEYS, **keys})


def classifier_only(name: str, keys: tuple[str, ...], build: Any) -> Derived:
    """A part that exists only for classifiers (NPO, KL and wrong labels need class probabilities)."""

    def make(h: dict[str, Any]) -> Any:
        if h["loss_type"] != "classifier":
            raise UnlearnlabError(f"{name} needs a classifier (loss_type='classifier'), got {h['loss_type']!r}.")
        return build(h)

    return Derived(("loss_type", *keys), make)


PROJECTION = Derived((*MINNORM_KEYS, "loss_type"), lambda h: Projection(
    **{k: h[k] for k in MINNORM_KEYS}, loss_type=h["loss_type"]))

register(
    "minnorm-og", loop(modifiers=(PROJECTION,), **MINNORM_KEYS),
    composition="— | J on D′_r × min_norm + AdamW", paper=MNOG,
    summary="Shrink θ toward the span of retain output gradients (θ ← θ − λ(θ − P_Aθ), λ decaying per "
            "projection), then an AdamW step on J(B_r); one step per forget batch.",
    reference={**REFERENCE, "grad_sample_size": 50},
)

# ------------------------------------------------------------------------------- the paper's own baselines

register("mnog/gd", loop(), composition="— | J_r × paper loop (AdamW)", paper=MNOG, forgets=False,
         summary="Gradient descent on J(B_r) in the paper's loop: one AdamW step per forget batch.",
         reference=REFERENCE)

register("mnog/ga", loop(forget=Derived(("loss_type", "logit_clamp"),
                                        lambda h: PaperLoss(h["loss_type"], h["logit_clamp"], sign=-1.0)),
                         rule=MinNormLoop(retain_weight=0.0)),
         composition="−J_f | — × paper loop (AdamW)", paper=MNOG,
         summary="Gradient ascent: −J(B_f) on each forget batch, AdamW.", reference=REFERENCE)

register("mnog/ngd", loop(modifiers=(GradientNoise(0.1),)), composition="— | J_r × paper loop + gradient noise",
         paper=MNOG, forgets=False, aliases=("ngd",),
         summary="Noisy GD: J(B_r), then N(0, σ²) added to every gradient entry before the AdamW step.",
         reference=REFERENCE)

register("mnog/ridge", loop(modifiers=(Derived(("reg_coef", "reg_coef_decay"), lambda h: Penalty(
    "l2", h["reg_coef"], "step_decay", decay=h["reg_coef_decay"])),), reg_coef=0.1, reg_coef_decay=0.8),
    composition="— | J_r + λ‖θ‖² × paper loop (λ decaying per step)", paper=MNOG, forgets=False,
    aliases=("ridge",), summary="J(B_r) + λ·Σθ², λ_0 = reg_coef, λ ← reg_coef_decay·λ after every step; AdamW.",
    reference=REFERENCE)

register("mnog/ngp", loop(forget=Derived(("loss_type", "logit_clamp", "forget_weight"), lambda h: PaperLoss(
    h["loss_type"], h["logit_clamp"], sign=-h["forget_weight"])), forget_weight=0.1),
    composition="−λ_GA·J_f | J_r × paper loop (AdamW)", paper=MNOG,
    summary="NegGrad+: J(B_r) − λ_GA·J(B_f) per step, AdamW.", reference=REFERENCE)

register("mnog/l1-sparse", loop(modifiers=(Derived(("reg_coef",), lambda h: Penalty(
    "l1", h["reg_coef"], "epoch_ramp")),), reg_coef=1e-3),
    composition="— | J_r + λ‖θ‖₁ × paper loop (λ by epoch)", paper=MNOG, forgets=False,
    summary="J(B_r) + λ·Σ|θ|; λ = reg_coef at the first step, then (2 − 2e/T)·reg_coef after a step in epoch e.",
    reference=REFERENCE)

register("mnog/retrain", loop(modifiers=(Reinitialise(),)),
         composition="— | J_r from a fresh init × paper loop (AdamW)", paper=MNOG, forgets=False,
         summary="Budget-matched retrain: every parameter to PyTorch's default init, then GD on J(B_r) for T "
                 "epochs.", reference=REFERENCE)

register("mnog/npo", loop(forget=classifier_only("mnog/npo", ("reg_coef", "logit_clamp"), lambda h: PaperNPO(
    beta=h["reg_coef"], logit_clamp=h["logit_clamp"])), rule=MinNormLoop(retain_weight=0.0), reg_coef=0.1),
    composition="NPO on D_f | — × paper loop (AdamW)", paper=MNOG, aliases=("npo",),
    summary="NPO: Σ_heads (2/β)·mean log(1 + (π_θ(y|x)/π_θ*(y|x))^β) on each forget batch, β = reg_coef, "
            "π the softmax probability of the true label, teacher θ* frozen in eval mode; AdamW.",
    reference=REFERENCE)


def _distill(kl_key: str, sign: float, ce: float) -> Derived:
    return classifier_only("mnog/scrub", (kl_key, "logit_clamp", "teacher_train_mode"), lambda h: PaperDistill(
        kl_weight=sign * h[kl_key], ce_weight=ce, logit_clamp=h["logit_clamp"],
        teacher_train_mode=h["teacher_train_mode"]))


register("mnog/scrub", loop(forget=_distill("forget_weight", -1.0, 0.0), retain=_distill("reg_coef", 1.0, 1.0),
                            rule=MinNormLoop(alternate=True), forget_weight=0.1, reg_coef=0.1,
                            teacher_train_mode=False),
         composition="−λ_GA·KL | J_r + λ_reg·KL × paper loop, alternating by epoch parity", paper=MNOG,
         summary="SCRUB variant: epoch t is a max-epoch (−λ_GA·Σ_heads KL(p_teacher ‖ p_student) on B_f) iff t is "
                 "odd and t < T − T_GD, else a min-epoch (J(B_r) + λ_reg·KL on B_r); teacher θ* frozen in eval mode.",
         reference=REFERENCE)

register("mnog/salun", loop(forget=classifier_only("mnog/salun", ("forget_weight", "logit_clamp"),
                                                   lambda h: PaperWrongLabel(h["forget_weight"], h["logit_clamp"])),
                            modifiers=(MedianMask(),), forget_weight=0.1),
         composition="λ_GA·wrong-label CE_f | J_r × paper loop + median-threshold mask", paper=MNOG,
         summary="SalUn variant: mask = |Σ_batches ∇J(B_f)| at θ* ≥ its lower median (train mode, buffers "
                 "restored), applied exactly (frozen entries and AdamW state bit-identical, no decay on them); loss "
                 "J(B_r) + λ_GA·Σ_heads CE(f(x_f), wrong label drawn uniformly per example per step).",
         reference=REFERENCE)
