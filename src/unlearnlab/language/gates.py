"""Validity gates of a TOFU-format benchmark: checks that the target and retain models mean what a table needs.

A run is valid when (docs/llm.md, "Validity gates"):

1. the target knows the forget authors — forget ROUGE-L ≥ ``rouge_min`` (0.9);
2. the target knows the retain set — retain ROUGE-L ≥ ``rouge_min``;
3. the retain model does not know the forget authors — its forget ROUGE-L is at most its ROUGE-L on the holdout
   authors (whom no model saw) plus ``unseen_margin`` (0.05): an answer's frame and the author's name, both in
   the question, earn ROUGE without any knowledge, and the holdout score measures exactly that;
4. forget quality of the target against the retain model is ≤ ``fq_target_max`` (0.01, "far below 0.05");
5. forget quality of a second retain model (another seed) against the first is ≥ ``fq_retain_min`` (0.05): the
   noise floor. Under the null the KS p-value of independent samples is uniform, so this check fails about 5 %
   of the time for a sound pipeline; the two retain models answer the same questions, which makes it rarer.
"""

from __future__ import annotations

from dataclasses import dataclass

from unlearnlab.language.evaluation import TofuReport
from unlearnlab.language.metrics import forget_quality


@dataclass(frozen=True)
class Check:
    name: str
    value: float
    threshold: float
    at_least: bool

    @property
    def passed(self) -> bool:
        return self.value >= self.threshold if self.at_least else self.value <= self.threshold

    def line(self) -> str:
        op = "≥" if self.at_least else "≤"
        return f"[{'pass' if self.passed else 'FAIL'}] {self.name}: {self.value:.4g} {op} {self.threshold:.4g}"


@dataclass(frozen=True)
class GateResult:
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def summary(self) -> str:
        """One line per check, then the verdict (printed under a table)."""
        verdict = "valid" if self.passed else "INVALID: a gate failed"
        return "\n".join([*(c.line() for c in self.checks), f"validity gates: {verdict}"])

    def as_dict(self) -> dict:
        return {"passed": self.passed, "checks": [{"name": c.name, "value": c.value, "threshold": c.threshold,
                                                   "at_least": c.at_least, "passed": c.passed}
                                                  for c in self.checks]}


def validity_gates(target: TofuReport, retain: TofuReport, retain_b: TofuReport, *, rouge_min: float = 0.9,
                   unseen_margin: float = 0.05, fq_target_max: float = 0.01, fq_retain_min: float = 0.05
                   ) -> GateResult:
    """The five gates from the reports of the target, the retain model and a second retain model (another seed),
    all on the same task."""
    r = retain.metrics
    return GateResult((
        Check("target forget ROUGE-L", target.metrics["forget_Q_A_ROUGE"], rouge_min, True),
        Check("target retain ROUGE-L", target.metrics["retain_Q_A_ROUGE"], rouge_min, True),
        Check("retain model forget ROUGE-L (vs its holdout ROUGE-L + margin)", r["forget_Q_A_ROUGE"],
              r["holdout_Q_A_ROUGE"] + unseen_margin, False),
        Check("forget quality, target vs retain", forget_quality(target.forget_truth_ratios,
                                                                 retain.forget_truth_ratios), fq_target_max, False),
        Check("forget quality, retain B vs retain A", forget_quality(retain_b.forget_truth_ratios,
                                                                     retain.forget_truth_ratios), fq_retain_min, True),
    ))
