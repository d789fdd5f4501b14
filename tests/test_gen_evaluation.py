"""Evaluator, validity gates, tiers and pictures of the generation family."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from unlearnlab.data.formats import DEBIAN_FASHION_MNIST_DIR
from unlearnlab.errors import UnlearnlabError
from unlearnlab.generation import (
    GenerationEvaluation,
    SamplerSettings,
    digits_denoiser,
    evaluate_generator,
    train_eval_classifier,
    validity_gates,
)
from unlearnlab.generation.evaluation import classify, real_statistics
from unlearnlab.generation.pictures import mosaic, save_comparison, save_sample_grid
from unlearnlab.generation.tiers import classifier_data, generation_task, get_tier, pool
from unlearnlab.training import Recipe

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def task():
    return generation_task("digits", 3, device="cpu")


@pytest.fixture(scope="module")
def classifier():
    train, test, name = classifier_data("digits")
    return train_eval_classifier(train, test, name, 10, recipe=Recipe(epochs=10), model="mlp")


def test_classifier_trained_on_every_class_with_its_test_accuracy(classifier):
    assert classifier.classes == tuple(range(10)) and classifier.dataset == "digits"
    assert classifier.test_accuracy > 80.0


def test_classifier_missing_a_class_is_refused():
    train, test, name = classifier_data("digits")
    without_3 = train.subset(torch.nonzero(train.y != 3).flatten())
    with pytest.raises(UnlearnlabError, match=r"classes \[3\] are missing"):
        train_eval_classifier(without_3, test, name, 10)


def test_classifier_of_other_classes_or_data_is_refused(task, classifier):
    model = digits_denoiser(task.input_shape, 10, width=16, depth=1)
    other = dataclasses.replace(classifier, classes=(0, 1, 2))
    with pytest.raises(UnlearnlabError, match="trained on classes"):
        evaluate_generator(model, task, classifier=other, n_forget=2, n_per_class=2)
    elsewhere = dataclasses.replace(classifier, dataset="fashion-mnist")
    with pytest.raises(UnlearnlabError, match="trained on 'fashion-mnist'"):
        evaluate_generator(model, task, classifier=elsewhere, n_forget=2, n_per_class=2)
    with pytest.raises(UnlearnlabError, match="classifier="):
        evaluate_generator(model, task, classifier=None, n_forget=2, n_per_class=2)


def test_features_are_the_input_of_the_last_linear_layer(classifier):
    images = torch.rand(5, 1, 8, 8)
    probs, features = classify(classifier, images)
    head = classifier.model[1][-1]
    logits = torch.from_numpy(features) @ head.weight.detach().T + head.bias.detach()
    assert np.allclose(torch.softmax(logits, 1).numpy(), probs, atol=1e-5)


def test_evaluation_records_metrics_definitions_and_settings(task, classifier):
    model = digits_denoiser(task.input_shape, 10, width=16, depth=1)
    sampler = SamplerSettings(steps=3, guidance=2.0, batch_size=40)
    real = real_statistics(task, classifier, 5)
    ev = evaluate_generator(model, task, classifier=classifier, sampler=sampler, n_forget=6, n_per_class=5, real=real,
                            grid_per_class=4)
    assert set(ev.metrics) == {"ua", "p_forget", "entropy_forget", "fidelity", "fd_clf", "kid_clf", "fd_clf_floor"}
    assert set(ev.definitions) == set(ev.metrics) and 0 <= ev.metrics["ua"] <= 100
    assert ev.settings["steps"] == 3 and ev.settings["guidance"] == 2.0 and ev.settings["eta"] == 1.0
    assert ev.settings["n_forget"] == 6 and ev.settings["n_per_class"] == 5 and ev.settings["forget_class"] == 3
    assert ev.settings["timesteps"] == model.timesteps and ev.settings["classifier"]["dataset"] == "digits"
    assert ev.grid.shape == (10, 4, 1, 8, 8) and set(ev.per_class) == set(range(10))
    gapped = evaluate_generator(model, task, classifier=classifier, sampler=sampler, n_forget=6, n_per_class=5,
                                real=real, reference=ev)
    assert gapped.metrics["ua_gap"] == 0.0 and gapped.metrics["avg_gap"] == 0.0  # same model, same noise
    assert "per_class" in ev.as_dict() and "grid" not in ev.as_dict()


def test_evaluation_needs_a_single_forgotten_class(classifier):
    task = dataclasses.replace(generation_task("digits", 3, device="cpu"), forgotten_classes=(3, 4))
    with pytest.raises(UnlearnlabError, match="exactly one class"):
        evaluate_generator(digits_denoiser(width=16, depth=1), task, classifier=classifier, n_forget=2,
                           n_per_class=2)


def test_floor_is_real_train_against_held_out_images(task, classifier):
    real = real_statistics(task, classifier, 20)
    assert real.count == len(task.test) and real.floor_count == 9 * 20 and real.floor > 0
    assert 3 not in task.test.y.tolist()


def _evaluation(ua: float, fd: float, floor: float, worst: float) -> GenerationEvaluation:
    return GenerationEvaluation({"ua": ua, "fd_clf": fd, "fd_clf_floor": floor}, {},
                                per_class={k: 100.0 if k else worst for k in range(10)})


def test_validity_gates_pass_and_fail():
    good = validity_gates(_evaluation(0.0, 1.5, 1.0, 85.0), _evaluation(95.0, 1.5, 1.0, 90.0), 80.0)
    assert good.passed and [g.passed for g in good.gates] == [True, True, True]
    bad = validity_gates(_evaluation(0.0, 2.5, 1.0, 75.0), _evaluation(85.0, 1.5, 1.0, 90.0), 80.0)
    assert not bad.passed and [g.passed for g in bad.gates] == [False, False, False]
    assert bad.gates[0].value == 75.0 and "class 0" in bad.gates[0].rule
    assert validity_gates(_evaluation(0.0, 2.5, 1.0, 85.0), _evaluation(95.0, 1.5, 1.0, 90.0), 80.0,
                          fd_factor=3.0).passed
    assert len(bad.lines()) == 3 and bad.lines()[0].startswith("FAIL")


@pytest.mark.parametrize("bad", [12, -1])
def test_unknown_forget_class_is_refused(bad):
    with pytest.raises(UnlearnlabError, match="is not a class of"):
        generation_task("digits", bad, device="cpu")
    with pytest.raises(UnlearnlabError, match="one class index"):
        generation_task("digits", True, device="cpu")
    with pytest.raises(UnlearnlabError, match="Unknown generation tier"):
        get_tier("mnist-huge")


def test_task_is_class_wise_and_of_the_generation_family(task):
    assert task.family == "generation" and task.forgotten_classes == (3,)
    assert set(task.forget.y.tolist()) == {3} and 3 not in task.retain.y.tolist()


def test_pool_averages_blocks():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert pool(x, 2)[0, 0].tolist() == [[2.5, 4.5], [10.5, 12.5]] and pool(x, None) is x
    with pytest.raises(UnlearnlabError, match="divisor"):
        pool(x, 3)


def test_sample_grid_and_comparison_are_pngs(tmp_path):
    grid = torch.rand(4, 3, 1, 8, 8)
    path = save_sample_grid(grid, tmp_path / "grid", forget_class=2, title="original")
    assert path.suffix == ".png" and path.read_bytes()[:8] == PNG
    both = save_comparison({"original": grid, "retrain": torch.rand(4, 3, 1, 8, 8)}, tmp_path / "cmp.png", 2)
    assert both.read_bytes()[:8] == PNG
    assert mosaic(grid).shape == (4 * 9, 3 * 9, 3)
    with pytest.raises(UnlearnlabError, match="same classes"):
        save_comparison({"a": grid, "b": torch.rand(4, 2, 1, 8, 8)}, tmp_path / "x.png")
    with pytest.raises(UnlearnlabError, match="channels"):
        save_sample_grid(torch.rand(4, 3, 2, 8, 8), tmp_path / "y.png")


@pytest.mark.skipif(not DEBIAN_FASHION_MNIST_DIR.exists(), reason="real Fashion-MNIST not installed "
                    "(apt-get install dataset-fashion-mnist)")
def test_fmnist_tier_pools_task_and_classifier_data_alike():
    task = generation_task("fmnist", 9, device="cpu")
    train, test, name = classifier_data("fmnist")
    assert task.input_shape == (1, 14, 14) and task.train.x.shape[1:] == (1, 14, 14)
    assert name == task.dataset == "fashion-mnist@14" and train.x.shape[1:] == test.x.shape[1:] == (1, 14, 14)
    assert set(task.forget.y.tolist()) == {9} and len(task.retain) + len(task.forget) == len(task.train)
    full = generation_task(dataclasses.replace(get_tier("fmnist"), resolution=None), 9, device="cpu")
    assert task.split_hash != full.split_hash and torch.allclose(task.forget.x[0], pool(full.forget.x[:1], 14)[0])
