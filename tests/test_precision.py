"""The mixed-precision policy (docs/architecture.md, "Precision"): autocast of the forwards only, fp32 weights,
fp16 always behind a gradient scaler whose skipped steps advance nothing, and rules that build their own steps
refuse fp16. Runs on CPU (bf16 and fp16 autocast both exist there)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import unlearnlab as ul
from unlearnlab.errors import UnlearnlabError
from unlearnlab.methods import RunContext
from unlearnlab.methods.modifiers.base import Modifier
from unlearnlab.methods.rules.base import Stepper
from unlearnlab.training import Precision, autocast_dtype


def test_auto_precision_is_fp32_on_cpu_and_names_are_checked():
    assert autocast_dtype("auto", torch.device("cpu")) is None
    assert autocast_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    assert autocast_dtype("fp16", torch.device("cpu")) == torch.float16
    with pytest.raises(UnlearnlabError, match="Unknown precision 'fp8'"):
        autocast_dtype("fp8", torch.device("cpu"))


def test_bf16_autocast_runs_the_forward_in_bf16_and_keeps_fp32_weights():
    model = nn.Linear(4, 3)
    policy = Precision("bf16", torch.device("cpu"))
    with policy.autocast():
        out = model(torch.randn(2, 4))
    assert out.dtype == torch.bfloat16
    policy.backward(out.float().sum())
    assert model.weight.grad.dtype == torch.float32


class _Recorder(Modifier):
    """Counts post-step hooks (a masked restore, a penalty decay would run there)."""

    name = "recorder"

    def __init__(self):
        self.after = 0

    def after_step(self, stepper, phase, optimizer):
        self.after += 1


def _stepper(model: nn.Module, precision: str) -> tuple[Stepper, _Recorder]:
    rec = _Recorder()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ctx = RunContext(seed=1)
    return Stepper(model, {"joint": opt}, {"joint": 0.1}, ctx, [rec], Precision(precision, torch.device("cpu"))), rec


def test_fp16_step_with_overflowing_gradients_is_skipped_and_advances_nothing():
    model = nn.Linear(2, 1)
    stepper, rec = _stepper(model, "fp16")
    before = [p.detach().clone() for p in model.parameters()]
    loss = (model(torch.ones(1, 2)) * torch.tensor(float("inf"))).sum()
    assert stepper.step(loss, "joint") is False
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert (rec.after, stepper.steps["joint"], stepper.ctx.counters.optimizer_steps) == (0, 0, 0)
    # the next finite step is taken and counted
    assert stepper.step(model(torch.ones(1, 2)).sum(), "joint") is True
    assert not torch.equal(before[0], model.weight)
    assert (rec.after, stepper.steps["joint"], stepper.ctx.counters.optimizer_steps) == (1, 1, 1)


def test_fp16_loss_scaling_is_undone_before_the_step():
    """Scaled then unscaled: the SGD step equals the fp32 step (the scale would otherwise multiply the update)."""
    torch.manual_seed(0)
    a, b = nn.Linear(3, 1), nn.Linear(3, 1)
    b.load_state_dict(a.state_dict())
    x = torch.randn(5, 3)
    for model, precision in [(a, "fp32"), (b, "fp16")]:
        stepper, _ = _stepper(model, precision)
        assert stepper.step(model(x).pow(2).mean(), "joint")
    assert torch.allclose(a.weight, b.weight, atol=1e-6)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("method", ["ft", "salun+dualoptim", "eupmu"])
def test_low_precision_unlearning_matches_fp32_quality_with_fp32_weights(method, precision, trained_mlp, digits_task):
    """Runs in low precision (the weights differ from the fp32 run) yet every step sees the current weights: a
    stale cast of the starting weights (an autocast cache held across steps) collapses retain accuracy."""
    low = ul.unlearn(trained_mlp, digits_task, method=method, seed=1, epochs=2, precision=precision)
    fp32 = ul.unlearn(trained_mlp, digits_task, method=method, seed=1, epochs=2)
    assert all(p.dtype == torch.float32 and bool(torch.isfinite(p).all()) for p in low.model.parameters())
    assert not all(torch.equal(p, q) for p, q in zip(low.model.parameters(), fp32.model.parameters()))
    a, b = ul.evaluate(low.model, digits_task).metrics, ul.evaluate(fp32.model, digits_task).metrics
    assert abs(a["ra"] - b["ra"]) < 2.0 and abs(a["ua"] - b["ua"]) < 5.0, (a, b)


def test_fp16_is_refused_by_a_rule_that_builds_its_own_steps(trained_mlp, digits_task):
    with pytest.raises(UnlearnlabError, match="fp16 needs loss scaling, which the surgery rule cannot use"):
        ul.unlearn(trained_mlp, digits_task, method="ungrad", seed=1, precision="fp16")


def test_certified_methods_take_no_precision_option(trained_mlp, digits_task):
    """The noisy phase's clip radius and noise scale are calibrated in fp32: no precision knob exists."""
    with pytest.raises(UnlearnlabError, match="Unknown certified-gradclip hyperparameter 'precision'"):
        ul.unlearn(trained_mlp, digits_task, method="certified-gradclip", seed=1, precision="bf16")


def test_training_in_bf16_reaches_fp32_accuracy(digits_task):
    results = {}
    for precision in ["fp32", "bf16"]:
        torch.manual_seed(0)
        model = ul.models.create("mlp", digits_task)
        ul.train(model, digits_task.train, ul.Recipe.default(digits_task).replace(epochs=5, precision=precision))
        results[precision] = ul.evaluate(model.eval(), digits_task).metrics["ta"]
    assert results["bf16"] > results["fp32"] - 2.0, results
