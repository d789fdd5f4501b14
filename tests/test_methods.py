"""Registry tests every method must pass, parametrised over ``list_methods()``.

A method registered later is tested here automatically. Runs are tiny: digits, the ``mlp`` original of
``conftest.trained_mlp``, and two epochs where the preset has an ``epochs`` key.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn

import unlearnlab as ul
from unlearnlab.data import tensors
from unlearnlab.errors import UnlearnlabError
from unlearnlab.families.classification import RandomLabelCE, distill_kl
from unlearnlab.methods import RunContext
from unlearnlab.methods.masks import saliency_mask
from unlearnlab.methods.modifiers.penalties import l1_weight

#: every method that runs on classifiers (the digits MLP these tests use); other families test their own presets
METHODS = [m for m in ul.list_methods() if "classification" in ul.get_method(m).families]
FORGETTING = [m for m in METHODS if ul.get_method(m).forgets]
#: one-shot methods with no randomness at all (a different seed cannot change their result)
DETERMINISTIC = {"iu", "iu-exact"}
FAST_EPOCHS = 2


#: values a preset deliberately has no default for (the user must pass them), given here to exercise it
REQUIRED = {"eupmu-normalised": {"epsilon": 100.0, "lambda_lr": 0.01}}


def fast(method: str, **extra) -> dict:
    """Small-epoch overrides for ``method`` (only keys its preset has), plus the values it requires; certified
    methods draw seeded noise so a seed reproduces them (their OS-entropy default is tested in
    test_certified_baselines.py)."""
    defaults = ul.get_method(method).defaults
    out = {"epochs": FAST_EPOCHS} if "epochs" in defaults else {}
    if "noise_source" in defaults:
        out["noise_source"] = "seeded"
    return {**out, **REQUIRED.get(method, {}), **extra}


def test_presets_without_a_default_refuse_to_run_until_given_one(trained_mlp, digits_task):
    for method, values in REQUIRED.items():
        with pytest.raises(UnlearnlabError, match="|".join(values)):
            ul.unlearn(trained_mlp, digits_task, method=method, epochs=1)


def params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def same_params(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def forget_scores(model: nn.Module, task: ul.ForgetTask) -> tuple[float, float]:
    """(forget accuracy in %, mean forget CE), eval mode."""
    was = model.training
    model.eval()
    with torch.no_grad():
        logits = model(task.forget.x)
    model.train(was)
    acc = 100.0 * (logits.argmax(1) == task.forget.y).float().mean().item()
    return acc, F.cross_entropy(logits, task.forget.y).item()


@pytest.fixture(scope="module")
def runs(trained_mlp, digits_task) -> dict:
    """One seed-1 run per method, shared by the tests of this module."""
    cache: dict = {}

    def get(method: str) -> ul.UnlearnResult:
        if method not in cache:
            cache[method] = ul.unlearn(trained_mlp, digits_task, method=method, seed=1, **fast(method))
        return cache[method]

    return get


# ------------------------------------------------------------------------------------------------ every method


@pytest.mark.parametrize("method", METHODS)
def test_method_runs_and_changes_parameters(method, runs, trained_mlp):
    before = params(trained_mlp)
    res = runs(method)
    assert res.method == method
    assert all(torch.isfinite(p).all() for p in res.model.parameters())
    assert not same_params(res.model, trained_mlp), f"{method} left every parameter unchanged"
    assert all(torch.equal(a, b) for a, b in zip(before, trained_mlp.parameters())), "original was modified"


@pytest.fixture(scope="module")
def trained_cnn(digits_task) -> nn.Module:
    """The small CNN (convolutions, global mean pool) trained briefly on digits."""
    model = ul.models.create("small_cnn", digits_task, seed=1)
    ul.train(model, digits_task.train, ul.Recipe.default(digits_task).replace(epochs=8))
    return model.eval()


@pytest.mark.parametrize("method", METHODS)
def test_method_runs_on_the_small_cnn(method, trained_cnn, digits_task):
    res = ul.unlearn(trained_cnn, digits_task, method=method, seed=1, **fast(method))
    assert not same_params(res.model, trained_cnn)
    row = ul.evaluate(res.model, digits_task)
    assert all(math.isfinite(v) for v in row.metrics.values()), row.metrics


@pytest.mark.parametrize("method", METHODS)
def test_method_returns_model_in_eval_mode_with_cost_counters(method, runs):
    res = runs(method)
    assert not res.model.training
    assert all(not m.training for m in res.model.modules())
    counters = res.counters.as_dict()
    assert counters["forward_samples"] > 0
    assert counters["backward_samples"] > 0
    assert counters["optimizer_steps"] > 0
    assert res.seconds > 0
    assert math.isfinite(res.stats.get("final_loss", 0.0))


@pytest.mark.parametrize("method", FORGETTING)
def test_forgetting_method_does_not_raise_forget_accuracy_or_lower_forget_loss(method, runs, trained_mlp,
                                                                               digits_task):
    acc0, loss0 = forget_scores(trained_mlp, digits_task)
    acc1, loss1 = forget_scores(runs(method).model, digits_task)
    assert acc1 <= acc0
    assert loss1 > loss0  # strict: a method that leaves D_f alone (or learns it) fails, even at 100 % accuracy


@pytest.mark.parametrize(("method", "lr"), [("rl", 0.1), ("salun", 0.1), ("ga", 0.05)])
def test_boosted_learning_rate_lowers_forget_accuracy(method, lr, trained_mlp, digits_task):
    acc0, _ = forget_scores(trained_mlp, digits_task)
    res = ul.unlearn(trained_mlp, digits_task, method=method, seed=1, **fast(method, lr=lr))
    acc1, _ = forget_scores(res.model, digits_task)
    assert acc1 <= acc0 - 3.0, f"{method} at lr={lr}: forget accuracy {acc0:.1f} -> {acc1:.1f}"


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_gives_bitwise_identical_parameters(method, runs, trained_mlp, digits_task):
    again = ul.unlearn(trained_mlp, digits_task, method=method, seed=1, **fast(method))
    assert same_params(again.model, runs(method).model)


@pytest.mark.parametrize("method", [m for m in METHODS if m not in DETERMINISTIC])
def test_different_seed_gives_different_parameters(method, runs, trained_mlp, digits_task):
    other = ul.unlearn(trained_mlp, digits_task, method=method, seed=2, **fast(method))
    assert not same_params(other.model, runs(method).model)


# ------------------------------------------------------------------------------------------------ retain loaders


@pytest.fixture
def loader_spy(monkeypatch) -> list[set[int]]:
    """Record the training positions (``TensorData.index``) of every batch any unlearnlab code gathers."""
    calls: list[set[int]] = []
    original = tensors.TensorData.gather

    def spy(self, pos):
        calls.append(set(self.index[pos.to(self.index.device)].tolist()))
        return original(self, pos)

    monkeypatch.setattr(tensors.TensorData, "gather", spy)
    return calls


def test_retrain_never_draws_a_forget_index(loader_spy, trained_mlp, digits_task):
    ul.unlearn(trained_mlp, digits_task, method="retrain", seed=1, epochs=2)
    forget = set(digits_task.forget_positions.tolist())
    assert loader_spy, "the spy saw no loader: retrain did not train through unlearnlab's iterate"
    assert all(call.isdisjoint(forget) for call in loader_spy)
    assert set().union(*loader_spy) == set(digits_task.retain.index.tolist())


def test_retrain_forwards_exactly_the_retain_samples(trained_mlp, digits_task):
    res = ul.unlearn(trained_mlp, digits_task, method="retrain", seed=1, epochs=2)
    assert res.counters.forward_samples == 2 * len(digits_task.retain)


def test_retrain_never_touches_forget_inputs(trained_mlp, digits_task):
    """Forget inputs full of NaN: a single forget sample in a training batch would poison the weights."""
    poisoned = (torch.full_like(digits_task.forget.x, float("nan")), digits_task.forget.y)
    res = ul.unlearn(trained_mlp, forget=poisoned, retain=digits_task.retain, method="retrain", seed=1, epochs=1)
    assert all(torch.isfinite(p).all() for p in res.model.parameters())


@pytest.mark.parametrize("method", METHODS)
def test_method_keeps_forget_and_retain_loaders_separate(method, loader_spy, trained_mlp, digits_task):
    ul.unlearn(trained_mlp, digits_task, method=method, seed=1, **fast(method))
    forget = set(digits_task.forget_positions.tolist())
    batches = [call for call in loader_spy if call]
    assert batches, f"{method}: the spy saw no batch"
    for call in batches:
        assert call <= forget or call.isdisjoint(forget), f"{method} mixed forget and retain samples in a batch"


# ------------------------------------------------------------------------------------------------ hyperparameters


def test_unknown_hyperparameter_is_refused_naming_the_allowed_keys(trained_mlp, digits_task):
    with pytest.raises(UnlearnlabError, match=r"'lrr'") as err:
        ul.unlearn(trained_mlp, digits_task, method="salun", lrr=0.1)
    message = str(err.value)
    assert "Did you mean 'lr'" in message
    for key in ul.get_method("salun").defaults:
        assert key in message


@pytest.mark.parametrize(("key", "value"), [("epochs", "3"), ("epochs", 2.5), ("lr", "fast"), ("epochs", True)])
def test_hyperparameter_of_wrong_type_is_refused(trained_mlp, digits_task, key, value):
    with pytest.raises(UnlearnlabError, match=rf"'{key}' expects a"):
        ul.unlearn(trained_mlp, digits_task, method="rl", **{key: value})


def test_integer_value_for_float_hyperparameter_is_accepted():
    assert ul.get_method("rl").resolve({"lr": 1})["lr"] == 1.0


def test_unknown_method_suggests_the_close_name(trained_mlp, digits_task):
    with pytest.raises(UnlearnlabError, match=r"Unknown method 'salum'\. Did you mean 'salun'"):
        ul.unlearn(trained_mlp, digits_task, method="salum")


def test_alias_neggrad_plus_resolves_to_the_canonical_preset(trained_mlp, digits_task):
    assert ul.get_method("neggrad+").name == "neggrad-plus"
    a = ul.unlearn(trained_mlp, digits_task, method="neggrad+", seed=1, epochs=1)
    b = ul.unlearn(trained_mlp, digits_task, method="neggrad-plus", seed=1, epochs=1)
    assert a.method == "neggrad-plus"
    assert same_params(a.model, b.model)


def test_list_methods_is_filterable_and_names_resolve():
    assert ul.list_methods("scrub*") == [m for m in METHODS if m.startswith("scrub")]
    for name in METHODS:
        assert ul.get_method(name).name == name


# ------------------------------------------------------------------------------------------------ objectives


class FixedLogits(nn.Module):
    """Logits z_k = k for every input, so CE with label y is logsumexp(z) − y: the label can be read back."""

    def __init__(self, classes: int):
        super().__init__()
        self.register_buffer("z", torch.arange(classes, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.z.expand(len(x), -1)


def test_random_labels_are_uniform_over_all_classes_and_fresh_per_batch():
    classes, draws = 7, 3500
    objective, model, ctx = RandomLabelCE(num_classes=classes), FixedLogits(classes), RunContext(seed=1)
    lse = torch.logsumexp(model.z, 0).item()
    batch = {"x": torch.zeros(1, 3), "y": torch.zeros(1, dtype=torch.long)}  # the true label is always 0
    labels = np.array([round(lse - objective(model, batch, ctx).item()) for _ in range(draws)])
    counts = np.bincount(labels, minlength=classes)
    assert len(counts) == classes
    assert stats.chisquare(counts).pvalue > 1e-3
    pairs = np.bincount(labels[:-1] * classes + labels[1:], minlength=classes * classes)
    assert stats.chisquare(pairs).pvalue > 1e-3  # consecutive batches are independent draws


def _tiny_problem(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    forget = (torch.randn(5, 4, generator=g), torch.tensor([0, 1, 2, 0, 1]))
    retain = (torch.randn(7, 4, generator=g), torch.tensor([2, 2, 1, 0, 1, 0, 2]))
    return model, forget, retain


def _one_sgd_step(model: nn.Module, loss_fn, lr: float) -> list[torch.Tensor]:
    grads = torch.autograd.grad(loss_fn(model), list(model.parameters()))
    return [p.detach() - lr * g for p, g in zip(model.parameters(), grads)]


def test_neggrad_plus_step_follows_beta_ce_retain_minus_one_minus_beta_ce_forget():
    model, (xf, yf), (xr, yr) = _tiny_problem()
    beta, lr = 0.7, 0.5
    res = ul.unlearn(model, forget=(xf, yf), retain=(xr, yr), method="neggrad-plus", seed=1, epochs=1, lr=lr,
                     beta=beta, batch_size=64, momentum=0.0, weight_decay=0.0)
    assert res.counters.optimizer_steps == 1  # one retain batch paired with one forget batch

    def loss(b):
        return lambda m: b * F.cross_entropy(m(xr), yr) - (1 - b) * F.cross_entropy(m(xf), yf)

    expected = _one_sgd_step(model, loss(beta), lr)
    swapped = _one_sgd_step(model, loss(1 - beta), lr)
    got = list(res.model.parameters())
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(got, expected))
    assert not all(torch.allclose(a, b, atol=1e-4) for a, b in zip(got, swapped))


@pytest.mark.parametrize(("epochs", "no_l1"), [(10, 0), (10, 3), (1, 0), (5, 4)])
def test_l1_weight_decays_linearly_then_is_zero(epochs, no_l1):
    alpha = 2e-3
    active = epochs - no_l1
    seq = [l1_weight(alpha, e, epochs, no_l1) for e in range(epochs)]
    expected = [alpha * (1 - e / active) if e < active else 0.0 for e in range(epochs)]
    assert seq == pytest.approx(expected, rel=1e-12, abs=0)
    assert seq[0] == pytest.approx(alpha)
    assert seq[active - 1] == pytest.approx(alpha / active)
    assert all(w == 0.0 for w in seq[active:])


SGD = {"epochs": 1, "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4, "batch_size": 64, "schedule": "constant"}


def test_l1_sparse_with_zero_alpha_is_fine_tuning(trained_mlp, digits_task):
    l1 = ul.unlearn(trained_mlp, digits_task, method="l1-sparse", seed=1, alpha=0.0, **SGD)
    ft = ul.unlearn(trained_mlp, digits_task, method="ft", seed=1, **SGD)
    assert same_params(l1.model, ft.model)


def test_l1_sparse_penalty_shrinks_the_l1_norm(trained_mlp, digits_task):
    def norm(m):
        return sum(p.abs().sum().item() for p in m.parameters())

    l1 = ul.unlearn(trained_mlp, digits_task, method="l1-sparse", seed=1, alpha=1e-2, **SGD)
    ft = ul.unlearn(trained_mlp, digits_task, method="ft", seed=1, **SGD)
    assert norm(l1.model) < 0.99 * norm(ft.model)


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_scrub_distill_kl_is_t_squared_kl_teacher_to_student(temperature):
    g = torch.Generator().manual_seed(0)
    student = torch.randn(6, 5, generator=g, dtype=torch.float64) * 2
    teacher = torch.randn(6, 5, generator=g, dtype=torch.float64) * 2
    t = temperature
    p_t, p_s = F.softmax(teacher / t, 1), F.softmax(student / t, 1)
    forward = t * t * (p_t * (p_t.log() - p_s.log())).sum(1).mean()
    reverse = t * t * (p_s * (p_s.log() - p_t.log())).sum(1).mean()
    got = distill_kl(student, teacher, t)
    assert torch.allclose(got, forward, rtol=1e-10, atol=0)
    assert not torch.allclose(got, reverse, rtol=1e-3, atol=0)
    assert distill_kl(teacher, teacher, t).abs() < 1e-12


# ------------------------------------------------------------------------------------------------ SalUn mask


def _one_linear(x_row: list[float]) -> tuple[nn.Module, ul.TensorData]:
    """Linear(2, 2) at zero: softmax is (½, ½), so every gradient entry is ±½·x_j (exact in float)."""
    model = nn.Sequential(nn.Linear(2, 2))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    return model, ul.TensorData.of(torch.tensor([x_row]), torch.tensor([0]))


def test_saliency_mask_breaks_ties_by_lower_flat_index():
    model, forget = _one_linear([1.0, 1.0])  # |g| = 0.5 for all 6 entries
    mask = saliency_mask(model, forget, 0.5)
    assert mask["0.weight"].tolist() == [[True, True], [True, False]]
    assert mask["0.bias"].tolist() == [False, False]


def test_saliency_mask_prefers_larger_scores_before_ties():
    model, forget = _one_linear([1.0, 2.0])  # |g_W| = [[.5, 1], [.5, 1]], |g_b| = [.5, .5]
    mask = saliency_mask(model, forget, 0.5)
    assert mask["0.weight"].tolist() == [[True, True], [False, True]]
    assert mask["0.bias"].tolist() == [False, False]


@pytest.mark.parametrize("fraction", [0.5, 0.37, 0.01])
def test_saliency_mask_has_exactly_floor_k_p_ones(trained_mlp, digits_task, fraction):
    mask = saliency_mask(trained_mlp, digits_task.forget, fraction)
    total = sum(p.numel() for p in trained_mlp.parameters())
    assert set(mask) == {n for n, _ in trained_mlp.named_parameters()}
    assert sum(int(m.sum()) for m in mask.values()) == math.floor(fraction * total)


def test_saliency_mask_leaves_model_mode_and_weights_untouched(trained_mlp, digits_task):
    before = params(trained_mlp)
    trained_mlp.train()
    try:
        saliency_mask(trained_mlp, digits_task.forget, 0.5)
        assert trained_mlp.training
    finally:
        trained_mlp.eval()
    assert all(torch.equal(a, b) for a, b in zip(before, trained_mlp.parameters()))


def test_no_preset_hyperparameter_shadows_an_unlearn_argument():
    """``ul.unlearn(model, task, method=..., **hparams)`` must accept every preset key."""
    import inspect

    own = set(inspect.signature(ul.unlearn).parameters) - {"hparams", "model"}
    for name in METHODS:
        assert not own & set(ul.get_method(name).defaults), name


def test_registering_a_clashing_hyperparameter_is_refused():
    with pytest.raises(ValueError, match="clash"):
        ul.register_method("clashing", composition="-", paper="-", summary="-", defaults={"task": 1})(
            lambda h, family: None)
