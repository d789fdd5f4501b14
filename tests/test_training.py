"""The training loop's precision options (mixed precision is what GPU runs use; bf16 autocast also runs on CPU)."""

from __future__ import annotations

import pytest
import torch

import unlearnlab as ul
from unlearnlab.training import autocast_dtype


def test_auto_precision_is_full_fp32_on_the_cpu():
    assert autocast_dtype("auto", torch.device("cpu")) is None
    assert autocast_dtype("fp32", torch.device("cpu")) is None
    assert autocast_dtype("bf16", torch.device("cpu")) == torch.bfloat16


def test_bf16_autocast_trains_as_well_as_fp32(digits_task):
    results = {}
    for precision in ("fp32", "bf16"):
        model = ul.models.create("small_cnn", digits_task, seed=1)
        recipe = ul.Recipe.default(digits_task).replace(epochs=6, precision=precision)
        stats = ul.train(model, digits_task.train, recipe)
        results[precision] = (stats.final_loss, ul.evaluate(model, digits_task)["ta"])
    assert results["bf16"][0] == pytest.approx(results["fp32"][0], rel=0.05)
    assert results["bf16"][1] > results["fp32"][1] - 5.0
    assert results["bf16"][0] != results["fp32"][0]  # autocast really ran in bf16


def test_unknown_precisions_are_refused(digits_task):
    with pytest.raises(ul.UnlearnlabError, match="precision"):
        ul.Recipe(precision="fp8")
