"""Metrics as pure functions over probability arrays and result rows; exact definitions in docs/metrics.md."""

from __future__ import annotations

from fnmatch import fnmatchcase

from unlearnlab.metrics.accuracy import accuracy, predict_probs, unlearning_accuracy
from unlearnlab.metrics.forget_score import (
    FORGET_SCORE_DEFINITIONS,
    eps_bar,
    final_score,
    forget_score,
    logit_scaled_confidence,
    per_example_epsilon,
)
from unlearnlab.metrics.gap import (
    GAP_METRICS,
    avg_gap_matched,
    avg_gap_means,
    gap_means_ua_ra_ta,
    mean_metric_std,
    mean_std,
    metric_means,
    per_metric_gaps,
    per_seed_gap,
)
from unlearnlab.metrics.mia import (
    MIA_DEFINITIONS,
    SVC_FEATURES,
    SVC_VARIANTS,
    SvcAttack,
    balanced_positions,
    entropy,
    m_entropy_fixed,
    mia_efficacy_svc_conf,
    mia_loss_lr_cv,
    mia_lr_entropy_member_rate,
    svc_attack,
    svc_shadow_members,
)
from unlearnlab.metrics.noise import above_noise, noise_scale
from unlearnlab.metrics.ulira import (
    ULIRA_DEFINITIONS,
    ShadowGaussians,
    UliraReference,
    attack_metrics,
    balanced_membership,
    fit_shadow_gaussians,
    ulira,
)

METRIC_DEFINITIONS: dict[str, str] = {
    "ua": "100 - top-1 accuracy (%) on D_f, eval mode, eval transforms",
    "ra": "top-1 accuracy (%) on D_r, eval mode, eval transforms",
    "ta": "top-1 accuracy (%) on D_test (class-wise: without the forgotten class), eval mode and transforms",
    "fa": "top-1 accuracy (%) on D_f, eval mode, eval transforms (EUPMU's retrain-free score; = 100 - ua)",
    **MIA_DEFINITIONS,
    "avg_gap_matched": (
        "mean +- std (ddof=1) over matched seeds s of (1/4) sum_{ua,ra,ta,mia} |method_k(s) - retrain_k(s)|"
    ),
    "avg_gap_means": "(1/4) sum_{ua,ra,ta,mia} |mean_s method_k - mean_s retrain_k| (paper-style)",
    "gap_means_ua_ra_ta": "(1/3) sum_{ua,ra,ta} |mean_s method_k - mean_s retrain_k| (DualOptim's 'ToW')",
    "mean_metric_std": "(1/4) sum_{ua,ra,ta,mia} std_s method_k, ddof=1 (DualOptim's 'Avg std')",
    "forget_score_eps": FORGET_SCORE_DEFINITIONS["forget_score_eps"],
    "final_score": FORGET_SCORE_DEFINITIONS["final_score"],
    **ULIRA_DEFINITIONS,
}


def list_metrics(pattern: str | None = None) -> list[str]:
    """Sorted metric names, optionally filtered by a shell-style pattern (``list_metrics("mia_*")``)."""
    return sorted(name for name in METRIC_DEFINITIONS if pattern is None or fnmatchcase(name, pattern))


__all__ = [
    "FORGET_SCORE_DEFINITIONS",
    "GAP_METRICS",
    "METRIC_DEFINITIONS",
    "MIA_DEFINITIONS",
    "SVC_FEATURES",
    "SVC_VARIANTS",
    "ULIRA_DEFINITIONS",
    "ShadowGaussians",
    "SvcAttack",
    "UliraReference",
    "above_noise",
    "accuracy",
    "attack_metrics",
    "avg_gap_matched",
    "avg_gap_means",
    "balanced_membership",
    "balanced_positions",
    "entropy",
    "eps_bar",
    "final_score",
    "fit_shadow_gaussians",
    "forget_score",
    "gap_means_ua_ra_ta",
    "list_metrics",
    "logit_scaled_confidence",
    "m_entropy_fixed",
    "mean_metric_std",
    "mean_std",
    "metric_means",
    "mia_efficacy_svc_conf",
    "mia_loss_lr_cv",
    "mia_lr_entropy_member_rate",
    "noise_scale",
    "per_example_epsilon",
    "per_metric_gaps",
    "per_seed_gap",
    "predict_probs",
    "svc_attack",
    "svc_shadow_members",
    "ulira",
    "unlearning_accuracy",
]
