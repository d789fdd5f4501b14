"""docs/extending.md runs as written (every ```python block, in order, in one namespace), and what it shows holds:
a method composed outside the package runs alone, under +dualoptim and under +eupmu, and is scored on user data."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import unlearnlab as ul
from unlearnlab.families import base as families_base

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"


@pytest.fixture(scope="module")
def namespace():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 6
    ns: dict = {}
    registered = dict(families_base._FAMILIES)
    try:
        for block in blocks:
            exec(compile(block, str(DOC), "exec"), ns)
        yield ns
    finally:
        families_base._FAMILIES.clear()
        families_base._FAMILIES.update(registered)


def test_composed_npo_lowers_forget_accuracy_and_keeps_retain_accuracy(namespace):
    scores, task, model = namespace["scores"], namespace["task"], namespace["model"]
    before = ul.evaluate(model, task)
    assert scores["ua"] > before["ua"] + 5  # NPO forgot part of D_f
    assert scores["ra"] > before["ra"] - 10
    assert namespace["result"].hparams["beta"] == 1.0 and namespace["result"].method == "npo-gd"


def test_the_wrapped_npo_methods_change_only_their_rule_or_optimizers(namespace):
    dual, eupmu = namespace["dual"], namespace["eupmu"]
    assert dual.name == "npo-gd+dualoptim" and eupmu.name == "npo-gd+eupmu"
    assert dual.defaults["optimizers"] == "adamw+sgd" and dual.defaults["lr"] == 0.01
    assert "epsilon" in eupmu.defaults and "epsilon" not in dual.defaults
    res = ul.unlearn(namespace["model"], namespace["task"], method=dual, epochs=1)
    assert res.stats["steps"]["forget"] > 0 and res.stats["steps"]["retain"] > 0


def test_the_custom_rule_runs_its_forget_epochs_then_its_retain_epochs(namespace):
    task = namespace["task"]
    res = ul.unlearn(namespace["model"], task, method=namespace["two_stage"], forget_epochs=2)
    per_pass = {side: -(-len(getattr(task, side)) // 64) for side in ("forget", "retain")}
    assert res.stats["steps"] == {"forget": 2 * per_pass["forget"], "retain": per_pass["retain"], "joint": 0}


def test_the_regression_family_runs_a_registered_preset(namespace):
    assert "regression" in ul.get_method("ga").families
    before = namespace["regressor"]
    after = namespace["res"].model
    assert not all(torch.equal(a, b) for a, b in zip(before.parameters(), after.parameters()))
