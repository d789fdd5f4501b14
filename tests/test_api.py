"""The public API: ``ul.unlearn`` on user data, its input checks, ``ul.evaluate``, divergence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import unlearnlab as ul
from unlearnlab.errors import DivergenceError, UnlearnlabError
from unlearnlab.objectives import FamilyLoss

RL = {"method": "rl", "seed": 1, "epochs": 1}


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def _xy(data: ul.TensorData) -> tuple[torch.Tensor, torch.Tensor]:
    return data.x.clone(), data.y.clone()


@pytest.fixture(scope="module")
def rl_on_tensors(trained_mlp, digits_task) -> ul.UnlearnResult:
    return ul.unlearn(trained_mlp, forget=_xy(digits_task.forget), retain=_xy(digits_task.retain), **RL)


# ------------------------------------------------------------------------------------------------ user data


def test_tensors_give_the_same_result_as_the_task(rl_on_tensors, trained_mlp, digits_task):
    via_task = ul.unlearn(trained_mlp, digits_task, **RL)
    assert _same(rl_on_tensors.model, via_task.model)


def test_tensor_dataset_gives_the_same_result_as_tensors(rl_on_tensors, trained_mlp, digits_task):
    res = ul.unlearn(trained_mlp, forget=TensorDataset(*_xy(digits_task.forget)),
                     retain=TensorDataset(*_xy(digits_task.retain)), **RL)
    assert _same(res.model, rl_on_tensors.model)


def test_dataloader_gives_the_same_result_as_tensors(rl_on_tensors, trained_mlp, digits_task):
    res = ul.unlearn(trained_mlp, forget=DataLoader(TensorDataset(*_xy(digits_task.forget)), batch_size=32),
                     retain=DataLoader(TensorDataset(*_xy(digits_task.retain)), batch_size=100), **RL)
    assert _same(res.model, rl_on_tensors.model)


def test_numpy_arrays_give_the_same_result_as_tensors(rl_on_tensors, trained_mlp, digits_task):
    as_np = [tuple(t.numpy() for t in _xy(d)) for d in (digits_task.forget, digits_task.retain)]
    res = ul.unlearn(trained_mlp, forget=as_np[0], retain=as_np[1], **RL)
    assert _same(res.model, rl_on_tensors.model)


def test_different_seed_on_user_data_gives_a_different_model(rl_on_tensors, trained_mlp, digits_task):
    res = ul.unlearn(trained_mlp, forget=_xy(digits_task.forget), retain=_xy(digits_task.retain),
                     **{**RL, "seed": 2})
    assert not _same(res.model, rl_on_tensors.model)


# ------------------------------------------------------------------------------------------------ bad inputs


def _unlearn_with_forget(model, task, forget):
    return ul.unlearn(model, forget=forget, retain=_xy(task.retain), **RL)


def test_length_mismatch_between_inputs_and_labels_is_refused(trained_mlp, digits_task):
    x, y = _xy(digits_task.forget)
    with pytest.raises(UnlearnlabError, match=r"forget has 130 inputs but 129 labels"):
        _unlearn_with_forget(trained_mlp, digits_task, (x, y[:-1]))


def test_two_dimensional_labels_are_refused(trained_mlp, digits_task):
    x, y = _xy(digits_task.forget)
    with pytest.raises(UnlearnlabError, match=r"labels have shape \(130, 10\).*one integer class label"):
        _unlearn_with_forget(trained_mlp, digits_task, (x, F.one_hot(y, 10)))


def test_soft_float_labels_are_refused(trained_mlp, digits_task):
    x, y = _xy(digits_task.forget)
    with pytest.raises(UnlearnlabError, match=r"not integers"):
        _unlearn_with_forget(trained_mlp, digits_task, (x, y.float() + 0.5))


@pytest.mark.parametrize("bad_label", [10, 11, -1])
def test_labels_outside_the_model_outputs_are_refused(trained_mlp, digits_task, bad_label):
    x, y = _xy(digits_task.forget)
    y[3] = bad_label
    with pytest.raises(UnlearnlabError, match=r"model has 10 outputs.*\[0, 9\]"):
        _unlearn_with_forget(trained_mlp, digits_task, (x, y))


def test_retain_labels_are_checked_too(trained_mlp, digits_task):
    x, y = _xy(digits_task.retain)
    y[0] = 10
    with pytest.raises(UnlearnlabError, match=r"retain labels"):
        ul.unlearn(trained_mlp, forget=_xy(digits_task.forget), retain=(x, y), **RL)


def test_input_shape_the_model_cannot_take_is_refused(trained_mlp, digits_task):
    x, y = _xy(digits_task.forget)
    with pytest.raises(UnlearnlabError, match=r"cannot take inputs of shape \(1, 7, 7\)"):
        _unlearn_with_forget(trained_mlp, digits_task, (x[:, :, :7, :7], y))


def test_empty_forget_set_is_refused(trained_mlp, digits_task):
    x, y = _xy(digits_task.forget)
    with pytest.raises(UnlearnlabError, match=r"forget set is empty"):
        _unlearn_with_forget(trained_mlp, digits_task, (x[:0], y[:0]))


def test_empty_forget_dataloader_is_refused(trained_mlp, digits_task):
    x, y = _xy(digits_task.forget)
    with pytest.raises(UnlearnlabError, match=r"forget.*(empty|no batches)"):
        _unlearn_with_forget(trained_mlp, digits_task, DataLoader(TensorDataset(x[:0], y[:0]), batch_size=4))


def test_unsupported_data_object_is_refused(trained_mlp, digits_task):
    with pytest.raises(UnlearnlabError, match=r"pass a \(x, y\) pair"):
        _unlearn_with_forget(trained_mlp, digits_task, "forget.npy")


def test_task_and_user_data_together_are_refused(trained_mlp, digits_task):
    with pytest.raises(UnlearnlabError, match=r"either task= or forget=/retain="):
        ul.unlearn(trained_mlp, digits_task, forget=_xy(digits_task.forget), **RL)


def test_missing_retain_data_is_refused(trained_mlp, digits_task):
    with pytest.raises(UnlearnlabError, match=r"needs task=, or both forget= and retain="):
        ul.unlearn(trained_mlp, forget=_xy(digits_task.forget), **RL)


def test_model_with_wrong_number_of_outputs_for_the_task_is_refused(digits_task):
    model = ul.models.create("mlp", digits_task, num_classes=5)
    with pytest.raises(UnlearnlabError, match=r"5 outputs but the task has 10 classes"):
        ul.unlearn(model, digits_task, **RL)


# ------------------------------------------------------------------------------------------------ copying


def test_unlearn_copies_the_model_by_default(trained_mlp, digits_task):
    before = [p.detach().clone() for p in trained_mlp.parameters()]
    res = ul.unlearn(trained_mlp, digits_task, **RL)
    assert res.model is not trained_mlp
    assert all(torch.equal(a, b) for a, b in zip(before, trained_mlp.parameters()))
    assert not _same(res.model, trained_mlp)


def test_unlearn_inplace_changes_the_given_model(trained_mlp, digits_task):
    import copy

    model = copy.deepcopy(trained_mlp)
    res = ul.unlearn(model, digits_task, inplace=True, **RL)
    assert res.model is model
    assert not _same(model, trained_mlp)


def test_progress_is_reported_up_to_completion(trained_mlp, digits_task):
    seen: list[float] = []
    ul.unlearn(trained_mlp, digits_task, progress=seen.append, **{**RL, "epochs": 2})
    assert seen
    assert all(0.0 <= f <= 1.0 for f in seen)
    assert seen == sorted(seen)
    assert seen[-1] == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------------ divergence


def test_nan_loss_from_a_huge_learning_rate_raises_divergence(trained_mlp, digits_task):
    with pytest.raises(DivergenceError, match=r"diverged.*Lower the learning rate"):
        ul.unlearn(trained_mlp, digits_task, method="ga", seed=1, epochs=1, lr=1e30)


def test_nan_objective_raises_divergence(trained_mlp, digits_task, monkeypatch):
    monkeypatch.setattr(FamilyLoss, "__call__", lambda self, model, batch, ctx: model(batch["x"]).sum() * float("nan"))
    with pytest.raises(DivergenceError):
        ul.unlearn(trained_mlp, digits_task, method="ft", seed=1, epochs=1)


def test_divergence_error_is_an_unlearnlab_error():
    assert issubclass(DivergenceError, UnlearnlabError)


# ------------------------------------------------------------------------------------------------ evaluate


def _accuracy(model, data) -> float:
    with torch.no_grad():
        return 100.0 * (model(data.x).argmax(1) == data.y).float().mean().item()


@pytest.fixture(scope="module")
def original_scores(trained_mlp, digits_task) -> ul.Evaluation:
    return ul.evaluate(trained_mlp, digits_task)


def test_evaluate_ua_is_100_minus_forget_accuracy(original_scores, trained_mlp, digits_task):
    assert original_scores["ua"] == pytest.approx(100.0 - _accuracy(trained_mlp, digits_task.forget), abs=1e-4)
    assert original_scores["ra"] == pytest.approx(_accuracy(trained_mlp, digits_task.retain), abs=1e-4)
    assert original_scores["ta"] == pytest.approx(_accuracy(trained_mlp, digits_task.test), abs=1e-4)


def test_evaluate_ua_tracks_a_forgetting_model(trained_mlp, digits_task):
    model = ul.unlearn(trained_mlp, digits_task, method="rl", seed=1, epochs=2, lr=0.1).model
    scores = ul.evaluate(model, digits_task)
    assert scores["ua"] == pytest.approx(100.0 - _accuracy(model, digits_task.forget), abs=1e-4)
    assert scores["ua"] > 0


def test_evaluate_names_its_definitions(original_scores):
    assert original_scores.definitions["mia"] == "mia_efficacy_svc_conf"
    assert original_scores["mia"] == original_scores["mia_efficacy_svc_conf"]
    for key in ("ua", "ra", "ta", "mia_efficacy_svc_conf", "mia_lr_entropy_member_rate"):
        assert key in original_scores.definitions
        assert 0.0 <= original_scores[key] <= 100.0


def test_evaluate_with_the_entropy_mia_as_primary(trained_mlp, digits_task, original_scores):
    scores = ul.evaluate(trained_mlp, digits_task, primary_mia="mia_lr_entropy_member_rate")
    assert scores.definitions["mia"] == "mia_lr_entropy_member_rate"
    assert scores["mia"] == original_scores["mia_lr_entropy_member_rate"]


def test_evaluate_gap_to_itself_is_zero(trained_mlp, digits_task, original_scores):
    assert ul.evaluate(trained_mlp, digits_task, reference=trained_mlp)["gap"] == 0.0
    assert ul.evaluate(trained_mlp, digits_task, reference=original_scores)["gap"] == 0.0


def test_evaluate_gap_is_the_mean_absolute_difference_of_ua_ra_ta_mia(trained_mlp, digits_task, original_scores):
    other = ul.unlearn(trained_mlp, digits_task, method="rl", seed=1, epochs=2, lr=0.1).model
    scores = ul.evaluate(other, digits_task, reference=original_scores)
    expected = sum(abs(scores[k] - original_scores[k]) for k in ("ua", "ra", "ta", "mia")) / 4
    assert scores["gap"] == pytest.approx(expected)
    assert scores["gap"] > 0
    assert "gap" in scores.definitions


def test_evaluate_refuses_a_reference_scored_with_another_mia(trained_mlp, digits_task, original_scores):
    with pytest.raises(UnlearnlabError, match=r"MIA"):
        ul.evaluate(trained_mlp, digits_task, reference=original_scores, primary_mia="mia_lr_entropy_member_rate")


def test_evaluate_refuses_an_unknown_primary_mia(trained_mlp, digits_task):
    with pytest.raises(UnlearnlabError, match=r"mia_efficacy_svc_conf"):
        ul.evaluate(trained_mlp, digits_task, primary_mia="mia_best")


def test_evaluate_values_are_finite_and_serialisable(original_scores):
    d = original_scores.as_dict()
    assert all(math.isfinite(v) for v in d["metrics"].values())
    assert np.isclose(d["metrics"]["ua"], original_scores["ua"])
