"""One miniature protocol run end to end: references, a method, gates, results.json and pictures."""

from __future__ import annotations

import dataclasses
import json

from unlearnlab.generation import SamplerSettings, diffusion_recipe, digits_denoiser
from unlearnlab.generation.experiment import run_protocol
from unlearnlab.generation.tiers import get_tier


def test_miniature_digits_protocol_writes_rows_gates_and_pictures(tmp_path):
    tier = dataclasses.replace(get_tier("digits"), recipe=diffusion_recipe(epochs=3, lr=1e-3),
                               sampler=SamplerSettings(steps=3), n_forget=10, n_per_class=10, classifier_epochs=2,
                               budgets={"ddpm/rl": {"iterations": 3}})
    run = run_protocol(tier, 2, methods=["rl"], out=tmp_path, device="cpu")
    assert [(r["method"], r["seed"]) for r in run.rows] == [("original", 1), ("retrain", 1), ("rl", 1)]
    assert run.rows[2]["hparams"]["iterations"] == 3 and "avg_gap" in run.rows[2]["metrics"]
    assert not run.gates.passed  # three epochs of training do not make a recognisable generator
    record = json.loads((tmp_path / "results.json").read_text())
    assert record["tier"]["sampler"]["steps"] == 3 and record["gates"]["passed"] is False
    assert record["rows"][0]["settings"]["forget_class"] == 2
    names = sorted(p.name for p in tmp_path.glob("*.png"))
    assert names == ["comparison.png", "samples-original.png", "samples-retrain.png", "samples-rl.png"]


def test_given_original_and_retrain_are_used_instead_of_training():
    tier = dataclasses.replace(get_tier("digits"), sampler=SamplerSettings(steps=2), n_forget=4, n_per_class=4,
                               classifier_epochs=1)
    original, retrain = digits_denoiser(width=16, depth=1, seed=5), digits_denoiser(width=16, depth=1, seed=6)
    run = run_protocol(tier, 1, methods=[], original=original, retrains={1: retrain}, device="cpu")
    assert [r["method"] for r in run.rows] == ["original", "retrain"]
    assert "original" not in run.seconds and "retrain/1" not in run.seconds
    assert run.rows[0]["seconds_method"] == 0.0 and run.rows[0]["settings"]["timesteps"] == original.timesteps
