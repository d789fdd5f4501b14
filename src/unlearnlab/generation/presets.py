"""Generation presets ``ddpm/<method>``: the DDPM papers' budgets composed from the shared objectives, rules and
modifiers (docs/generation.md, "Methods"). Nothing here is specific to diffusion except the values.

* SalUn family (``ddpm/rl``, ``ddpm/salun``, ``ddpm/ga``, ``ddpm/ft``): one joint step per iteration,
  L = F(B_f) + α·L_ε(B_r) (α = 1e-3; ``ddpm/ft`` has no forget term and weight 1), batch 128 on both sides, Adam
  1e-4, gradient clip 1.0, ``iterations`` steps (1,000 in the papers). ``ddpm/salun`` adds the 50 % saliency mask.
* SFR-on family (``ddpm/sfron``, ``ddpm/sfron+dualoptim``): per iteration one forget step −α_t·Σ w_i·ℓ_i
  (λ = 0.5, α_t cosine from α_0 = 10) on Fisher-salient weights, then one retain step, Adam 1e-4, clip 1.0,
  150 iterations; with DualOptim the forget steps get their own Adam (lr 1e-4) and α_0 = 1.
* EUPMU (``ddpm/eupmu``, ``ddpm/salun+eupmu``): the RL/SalUn objectives with implicit gradient surgery, the retain
  loss scaled by α = 1e-3, over ``epochs`` passes (the surgery rule counts epochs).
* DualOptim over the SalUn hosts (``ddpm/rl+dualoptim``, ``ddpm/salun+dualoptim``): the host's steps split into
  forget and retain steps with two Adams (the DDPM code's optimizer pair), forget lr 1e-4.
* ``ddpm/retrain``: fresh initialisation, then the originals' recipe on D_r (Adam 2e-4, clip 1.0).

``defaults`` are the digits tier's scaled budgets (measured on 2 CPU cores, docs/generation.md); ``reference``
holds the papers' CIFAR-10 values. Budgets are given by ``iterations`` (``epochs=None``), or by ``epochs`` passes
over D_r when ``iterations`` is None.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from unlearnlab.errors import UnlearnlabError
from unlearnlab.generation.family import GENERATION
from unlearnlab.generation.training import DIGITS_RECIPE
from unlearnlab.methods.method import Derived, Method, compose
from unlearnlab.methods.modifiers.gradients import GradientClip
from unlearnlab.methods.modifiers.masking import FisherMask, SaliencyMask
from unlearnlab.methods.oneshot import Retrain
from unlearnlab.methods.optimization import Optimization
from unlearnlab.methods.registry import MethodInfo, OneShot, register
from unlearnlab.methods.rules.alternate import Interleave
from unlearnlab.methods.rules.implicit_surgery import ImplicitSurgery
from unlearnlab.methods.rules.joint import Joint
from unlearnlab.methods.wrappers import DUALOPTIM, EUPMU, dualoptim_method, surgery_method
from unlearnlab.training import Recipe

SALUN = "SalUn (Fan et al., ICLR 2024)"
SFRON = "SFR-on (Huang et al., arXiv 2409.19732)"

#: every optimisation key except ``epochs`` (which may be None when ``iterations`` sets the budget)
OPT_KEYS = tuple(k for k in Optimization.option_names() if k != "epochs")
ADAM: dict[str, Any] = {"optimizer": "adam", "lr": 1e-4, "momentum": 0.0, "weight_decay": 0.0, "batch_size": 128}
#: the papers' CIFAR-10 budgets
SALUN_REFERENCE: dict[str, Any] = {"iterations": 1000, "epochs": None}
SFRON_REFERENCE: dict[str, Any] = {"iterations": 150, "epochs": None, "lr": 1e-4}
DUAL_REFERENCE: dict[str, Any] = {**SFRON_REFERENCE, "forget_lr": 1e-4}
#: digits tier (docs/generation.md, "Tiers"): budgets scaled to the 8×8 model and 2 CPU cores, measured on class 0
SALUN_DIGITS: dict[str, Any] = {"iterations": 200, "epochs": None}
SFRON_DIGITS: dict[str, Any] = {"iterations": 100, "epochs": None, "lr": 3e-4}
DUAL_DIGITS: dict[str, Any] = {"iterations": 200, "epochs": None, "lr": 1e-4, "forget_lr": 3e-4}
EUPMU_EPOCHS_DIGITS = 10


def budget(h: Mapping[str, Any]) -> int | None:
    """The rule's iteration count: ``iterations``, or None (epochs) when ``iterations`` is None; both or neither
    set is an error."""
    if (h["iterations"] is None) == (h["epochs"] is None):
        raise UnlearnlabError("Give the budget as iterations=N (with epochs=None) or epochs=E (with iterations=None),"
                              f" not {'both' if h['iterations'] is not None else 'neither'}.")
    return h["iterations"]


def _optimization(h: Mapping[str, Any]) -> Optimization:
    return Optimization(**{k: h[k] for k in OPT_KEYS}, epochs=h["epochs"] or 1)


def optimization() -> Derived:
    """Adam settings (every key of :class:`Optimization` readable, for the DualOptim wrapper); ``epochs`` None → 1."""
    return Derived((*OPT_KEYS, "epochs"), _optimization)


def joint(alpha_key: str | None) -> Derived:
    """Joint(forget weight 1, retain weight α) for ``iterations`` steps (or the epochs)."""
    keys = ("iterations", "epochs") + ((alpha_key,) if alpha_key else ())
    return Derived(keys, lambda h: Joint(retain_weight=h[alpha_key] if alpha_key else 1.0, iterations=budget(h)))


def generation_only(method: Method) -> Method:
    """``method`` limited to the generation family (its budgets are the DDPM papers')."""
    return method.replace(families=(GENERATION.name,))


def salun_family(forget: str | None, mask: bool = False, **extra: Any) -> Method:
    modifiers: list[Any] = [SaliencyMask(0.5)] if mask else []
    alpha = {"alpha": 1e-3} if forget else {}
    method = compose(forget=forget, retain="loss", rule=joint("alpha" if forget else None),
                     modifiers=[*modifiers, GradientClip(1.0)], optimization=optimization(), family=GENERATION,
                     **{**Optimization(**ADAM).options(), **ADAM, **SALUN_DIGITS, **alpha, **extra})
    return generation_only(method)


def _sfron_rule(h: Mapping[str, Any]) -> Interleave:
    return Interleave(1, 1, iterations=budget(h))


def sfron_method(**extra: Any) -> Method:
    method = compose(forget="weighted_ascent", retain="loss", rule=Derived(("iterations", "epochs"), _sfron_rule),
                     modifiers=[FisherMask(1.0), GradientClip(1.0)], optimization=optimization(), family=GENERATION,
                     **{**Optimization(**ADAM).options(), **ADAM, **SFRON_DIGITS, "alpha0": 10.0, "lam": 0.5, **extra})
    return generation_only(method)


def _register(name: str, method: Method | OneShot, composition: str, paper: str, summary: str,
              reference: Mapping[str, Any], forgets: bool = True) -> MethodInfo:
    """:func:`register` with the arguments in table order."""
    return register(name, method, composition=composition, paper=paper, summary=summary, reference=reference,
                    forgets=forgets)


def dual(host: Method, **extra: Any) -> Method:
    """``host`` with the DDPM code's optimizer pair: forget Adam (lr ``forget_lr``, no decay) + retain Adam."""
    return dualoptim_method(host, **{"optimizers": "adam+adam", "forget_lr": 1e-4, "forget_weight_decay": 0.0,
                                     **extra})


def eupmu_method(host: Method) -> Method:
    """``host``'s objectives under implicit surgery (ε = −0.01), the retain loss scaled by α = 1e-3."""
    return surgery_method(host, ImplicitSurgery(epsilon=-0.01), "eupmu", retain_scale=1e-3, epochs=EUPMU_EPOCHS_DIGITS)


RL = salun_family("random_labels")
SALUN_METHOD = salun_family("random_labels", mask=True)
SFRON_METHOD = sfron_method()
JOINT = "F_f + α·L_ε,r × joint (iterations) + clip 1.0, Adam 1e-4"

_register("ddpm/rl", RL, f"RL_f | {JOINT}", SALUN, "Random labels for diffusion: the forget class's prediction "
          "pulled to the model's own (detached) prediction for class (c+1) mod C, plus α·ε-loss on D_r.",
          SALUN_REFERENCE)
_register("ddpm/salun", SALUN_METHOD, f"RL_f | {JOINT} + saliency mask 50 %", SALUN,
          "ddpm/rl on the 50 % of weights with the largest forget ε-loss gradient.", SALUN_REFERENCE)
_register("ddpm/ga", salun_family("neg_loss"), f"−L_ε,f | {JOINT}", SALUN,
          "Gradient ascent on the forget ε-loss plus α·ε-loss on D_r (SalUn's DDPM --method ga).", SALUN_REFERENCE)
_register("ddpm/ft", salun_family(None), "— | L_ε,r × joint (iterations) + clip 1.0, Adam 1e-4", SALUN,
          "Fine-tune on D_r with the ε-loss for the SalUn budget.", SALUN_REFERENCE, forgets=False)
_register("ddpm/sfron", SFRON_METHOD,
          "−α_t·Σw_i·L_ε,f | L_ε,r × interleave(1, 1) + Fisher-ratio mask (forget steps) + clip 1.0, Adam 1e-4",
          SFRON, "Adaptive weighted ascent on Fisher-salient weights, one retain step after each forget step.",
          SFRON_REFERENCE)
_register("ddpm/sfron+dualoptim", dual(SFRON_METHOD, alpha0=1.0, **DUAL_DIGITS),
          "ddpm/sfron × alternate[dual] (forget Adam, retain Adam 1e-4), α_0 = 1", DUALOPTIM,
          "ddpm/sfron with a separate forget Adam, as the DualOptim DDPM code.", DUAL_REFERENCE)
_register("ddpm/rl+dualoptim", dual(RL), "ddpm/rl × interleave[dual] (forget Adam 1e-4, retain Adam 1e-4)",
          DUALOPTIM, "ddpm/rl with forget and retain steps on two Adams.", SALUN_REFERENCE)
_register("ddpm/salun+dualoptim", dual(SALUN_METHOD),
          "ddpm/salun × interleave[dual] (forget Adam 1e-4, retain Adam 1e-4)", DUALOPTIM,
          "ddpm/salun with forget and retain steps on two Adams.", SALUN_REFERENCE)
_register("ddpm/eupmu", eupmu_method(RL), "RL_f | 1e-3·L_ε,r × implicit_surgery (ε = −0.01) + clip 1.0, Adam 1e-4",
          EUPMU, "ddpm/rl's objectives with implicit gradient surgery (EUPMU DDPM, --method rl --alpha 0.001).",
          {"epochs": 3})
_register("ddpm/salun+eupmu", eupmu_method(SALUN_METHOD),
          "RL_f | 1e-3·L_ε,r × implicit_surgery (ε = −0.01) + saliency mask + clip 1.0, Adam 1e-4", EUPMU,
          "ddpm/salun's objectives and mask with implicit gradient surgery.", {"epochs": 3})
_register("ddpm/retrain", OneShot(lambda h, family: Retrain(Recipe.from_dict(h)),
                                  {**DIGITS_RECIPE.to_dict(), "milestones": ()}, (GENERATION.name,)),
          "one-shot", "every protocol (gold standard)", "Fresh initialisation, then the originals' diffusion recipe "
          "(Adam, clip 1.0) on D_r.", {"epochs": 2048, "lr": 2e-4, "schedule": "constant"}, forgets=False)
