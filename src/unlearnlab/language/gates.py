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

A check whose model is missing (a real run with the user's one retain model has no second seed; a run without a
retain model has neither) is listed as not measured: the verdict then says the run is valid only as far as it was
checked.
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
    #: names of the checks that could not be measured (their model is missing)
    missing: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def lines(self) -> list[str]:
        """One line per check (measured or not), then the verdict."""
        if not self.passed:
            verdict = "INVALID: a gate failed"
        elif self.missing:
            verdict = f"valid as far as checked ({len(self.missing)} check(s) not measured)"
        else:
            verdict = "valid"
        return [*(c.line() for c in self.checks), *(f"[n/a] {name}: not measured" for name in self.missing),
                f"validity gates: {verdict}"]

    def summary(self) -> str:
        """:meth:`lines` joined (printed under a table)."""
        return "\n".join(self.lines())

    def as_dict(self) -> dict:
        return {"passed": self.passed, "missing": list(self.missing),
                "checks": [{"name": c.name, "value": c.value, "threshold": c.threshold, "at_least": c.at_least,
                            "passed": c.passed} for c in self.checks]}


def validity_gates(target: TofuReport, retain: TofuReport | None, retain_b: TofuReport | None, *,
                   rouge_min: float = 0.9, unseen_margin: float = 0.05, fq_target_max: float = 0.01,
                   fq_retain_min: float = 0.05) -> GateResult:
    """The five gates from the reports of the target, the retain model and a second retain model (another seed),
    all on the same task; a ``None`` report leaves its checks not measured."""
    checks = [Check("target forget ROUGE-L", target.metrics["forget_Q_A_ROUGE"], rouge_min, True),
              Check("target retain ROUGE-L", target.metrics["retain_Q_A_ROUGE"], rouge_min, True)]
    names = ("retain model forget ROUGE-L (vs its holdout ROUGE-L + margin)", "forget quality, target vs retain",
             "forget quality, retain B vs retain A")
    if retain is None:
        return GateResult(tuple(checks), names)
    r = retain.metrics
    if r.get("forget_Q_A_ROUGE") is not None and r.get("holdout_Q_A_ROUGE") is not None:
        checks.append(Check(names[0], r["forget_Q_A_ROUGE"], r["holdout_Q_A_ROUGE"] + unseen_margin, False))
    missing = [] if len(checks) == 3 else [names[0]]
    checks.append(Check(names[1], forget_quality(target.forget_truth_ratios, retain.forget_truth_ratios),
                        fq_target_max, False))
    if retain_b is None:
        missing.append(names[2])
    else:
        checks.append(Check(names[2], forget_quality(retain_b.forget_truth_ratios, retain.forget_truth_ratios),
                            fq_retain_min, True))
    return GateResult(tuple(checks), tuple(missing))
