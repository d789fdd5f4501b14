"""``unlearnlab tune``: selection on D_val (never on test), resumable Optuna studies, outputs, spaces, errors."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

optuna = pytest.importorskip("optuna")

from unlearnlab.bench import classification  # noqa: E402
from unlearnlab.bench import tune as tune_mod  # noqa: E402
from unlearnlab.bench.config import load_config  # noqa: E402
from unlearnlab.bench.plan import plan  # noqa: E402
from unlearnlab.cli import app  # noqa: E402
from unlearnlab.errors import UnlearnlabError  # noqa: E402
from unlearnlab.methods import list_methods  # noqa: E402

FAST = {"recipe": {"epochs": 5}}  # a 5-epoch original/retrain keeps each test to a few seconds


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> dict[str, list]:
    """Record the task every evaluate()/unlearn() call of the tuner (and of the trial work) receives."""
    seen: dict[str, list] = {"evaluate": [], "unlearn": []}
    real_eval, real_unlearn = tune_mod.evaluate, classification.unlearn

    def evaluate(model, task, *args, **kwargs):
        seen["evaluate"].append(task)
        return real_eval(model, task, *args, **kwargs)

    def unlearn(model, task, **kwargs):
        seen["unlearn"].append(task)
        return real_unlearn(model, task, **kwargs)

    monkeypatch.setattr(tune_mod, "evaluate", evaluate)
    monkeypatch.setattr(classification, "evaluate", evaluate)
    monkeypatch.setattr(classification, "unlearn", unlearn)
    return seen


def test_tune_selects_on_val_resumes_and_writes_outputs(tmp_path: Path, cache_dir: Path, spy):
    out = tmp_path / "tune"
    first = tune_mod.tune("digits", "mlp", "random:0.1", "ga", seeds=[1], n_trials=3, out=out, **FAST)
    # never the test set: every scored or unlearned task has D_val in the place of D_test
    assert spy["evaluate"] and spy["unlearn"]
    assert all(task.test is task.val for task in spy["evaluate"] + spy["unlearn"])
    assert len(spy["evaluate"]) == 1 + 3  # the retrained reference once, then one per trial
    assert first.select_on == "val" and first.compat == []
    assert len(first.trials) == 3
    values = [t["value"] for t in first.trials]
    assert first.best_value == min(values)
    assert set(first.best_params) == {"lr"} and 1e-5 <= first.best_params["lr"] <= 1e-1
    assert (out / "tune.sqlite").exists()

    second = tune_mod.tune("digits", "mlp", "random:0.1", "ga", seeds=[1], n_trials=3, out=out, **FAST)
    assert [t["number"] for t in second.trials] == list(range(6))  # resumed, not restarted
    assert len({t["params"]["lr"] for t in second.trials}) == 6  # the reseeded sampler does not replay
    assert second.best_value <= first.best_value

    with open(out / "trials.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and {"avg_gap", "ta_val", "lr"} <= set(rows[0])
    assert all(math.isfinite(float(r["avg_gap"])) for r in rows)
    text = (out / "best.yaml").read_text()
    assert "selected on D_val" in text
    config = load_config(out / "best.yaml")  # a runnable `unlearnlab run` config
    assert config.hparams == {"ga": {"lr": second.best_params["lr"]}}
    assert plan(config).hparams["ga"]["lr"] == second.best_params["lr"]
    for suffix in ("png", "pdf"):
        assert (out / f"sensitivity-lr.{suffix}").stat().st_size > 1000
    assert "| trial |" in (out / "tune.md").read_text()


def test_select_on_test_is_explicit_and_recorded(tmp_path: Path, cache_dir: Path, spy):
    result = tune_mod.tune("digits", "mlp", "random:0.1", "ga", seeds=[1], n_trials=1, out=tmp_path,
                           select_on="test", plots=False, **FAST)
    assert result.compat == ["select_on=test"]
    assert all(task.test is not task.val for task in spy["evaluate"])
    assert "compat: select_on=test" in (tmp_path / "best.yaml").read_text()
    with pytest.raises(UnlearnlabError, match="select_on"):
        tune_mod.tune("digits", "mlp", "random:0.1", "ga", n_trials=1, out=tmp_path, select_on="train")


def test_custom_space_from_yaml_with_choices_and_fixed_hparams(tmp_path: Path, cache_dir: Path):
    path = tmp_path / "space.yaml"
    path.write_text("lr: [1e-3, 3e-3]\nepochs: {low: 1, high: 2}\n")
    space = tune_mod.load_space(path)
    assert tune_mod.validate_space("ga", space)["epochs"] == {"low": 1, "high": 2, "log": False, "int": True}
    result = tune_mod.tune("digits", "mlp", "random:0.1", "ga", seeds=[1], n_trials=3, out=tmp_path / "o",
                           space=space, hparams={"momentum": 0.0}, plots=False, **FAST)
    for t in result.trials:
        assert t["params"]["lr"] in (1e-3, 3e-3) and t["params"]["epochs"] in (1, 2)
    assert result.hparams == {"momentum": 0.0, **result.best_params}


def test_built_in_spaces_follow_the_specs():
    for name in list_methods():
        if name == "retrain":
            continue
        tune_mod.validate_space(name, tune_mod.default_space(name))  # every preset has a valid space
    eupmu = tune_mod.default_space("eupmu")
    assert {"lr", "epsilon", "lambda_lr"} <= set(eupmu) and eupmu["epsilon"]["high"] < 0
    assert set(tune_mod.default_space("salun+dualoptim")) == {"forget_lr"}  # η_r fixed, η_f searched
    assert "beta" in tune_mod.default_space("neggrad-plus")
    assert "alpha" in tune_mod.default_space("l1-sparse") and "alpha" in tune_mod.default_space("iu")
    assert "forget_lr" in tune_mod.default_space("scrub")
    assert tune_mod.default_space("ga")["lr"] == {"low": 1e-5, "high": 1e-1, "log": True}


def test_negative_log_range_samples_negative_values():
    spec = tune_mod.validate_space("eupmu", {"epsilon": {"low": -0.1, "high": -0.001, "log": True}})["epsilon"]
    assert tune_mod._suggest(optuna.trial.FixedTrial({"neg_epsilon": 0.02}), "epsilon", spec) == -0.02
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    values = [tune_mod._suggest(study.ask(), "epsilon", spec) for _ in range(20)]
    assert all(-0.1 <= v <= -0.001 for v in values)


@pytest.mark.parametrize(("method", "space", "message"), [
    ("no-such-method", None, "Unknown method 'no-such-method'"),
    ("retrain", None, "nothing to tune"),
    ("ga", {"learning_rate": {"low": 1e-3, "high": 1e-2}}, "Unknown ga hyperparameter 'learning_rate'"),
    ("ga", {"lr": {"low": 1e-2, "high": 1e-3}}, "low"),
    ("ga", {"lr": {"low": -1.0, "high": 1e-3, "log": True}}, "one sign"),
    ("ga", {"lr": "fast"}, "list of choices"),
    ("ga", {"schedule": {"low": 0, "high": 1}}, "list of choices"),
    ("ga", {"lr": [0.1, "x"]}, "expects a float"),
])
def test_unknown_method_or_parameter_fails_clearly(tmp_path: Path, method, space, message):
    with pytest.raises(UnlearnlabError, match=message):
        tune_mod.tune("digits", "mlp", "random:0.1", method, n_trials=1, out=tmp_path, space=space)
    assert not (tmp_path / "tune.sqlite").exists()  # nothing written before validation passes


def test_fixed_and_searched_key_clash_and_foreign_study(tmp_path: Path):
    with pytest.raises(UnlearnlabError, match="both fixed"):
        tune_mod.tune("digits", "mlp", "random:0.1", "ga", n_trials=1, out=tmp_path, hparams={"lr": 0.1})
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    other = optuna.create_study(study_name="s", storage=url)
    other.set_user_attr("identity", {"method": "rl"})
    with pytest.raises(UnlearnlabError, match="another search"):
        tune_mod.tune("digits", "mlp", "random:0.1", "ga", n_trials=1, out=tmp_path, storage=url, study_name="s")


def test_cli_tune_with_space_file(tmp_path: Path, cache_dir: Path):
    space = tmp_path / "space.yaml"
    space.write_text("lr: {low: 1.0e-4, high: 1.0e-2, log: true}\n")
    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["tune", "--method", "ga", "--seeds", "1", "--trials", "2", "--epochs", "5",
                                      "--out", str(out), "--space", str(space), "--set", "momentum=0.5"])
    assert result.exit_code == 0, result.output
    assert "Avg.Gap on D_val" in result.output
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert best["hparams"]["ga"]["momentum"] == 0.5 and 1e-4 <= best["hparams"]["ga"]["lr"] <= 1e-2
    bad = CliRunner().invoke(app, ["tune", "--method", "ga", "--out", str(out), "--space", str(tmp_path / "no.yaml")])
    assert bad.exit_code == 2 and "does not exist" in " ".join(bad.output.split())


def test_protocol_selection_writes_the_values_in_the_committed_format(tmp_path: Path, cache_dir: Path):
    """`unlearnlab tune --protocol NAME --method ft`: the protocol's data, recipe and per-seed originals, its
    budget keys fixed, and a protocol-hparams.yaml whose `protocols` entry the protocol file takes as it is."""
    from unlearnlab.bench.protocol_tuning import OUTPUT, template_name
    from unlearnlab.protocols_fmnist import tuned_hparams

    out = tmp_path / "sel"
    result = CliRunner().invoke(app, ["tune", "--protocol", "digits-random10", "--method", "ft", "--trials", "2",
                                      "--seeds", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    doc = yaml.safe_load((out / OUTPUT).read_text())
    assert doc["selected_on"] == "val" and doc["selection"]["ft"]["trials"] == 2
    (values,) = doc["protocols"].values()
    assert set(doc["protocols"]) == {"digits-random10"} and set(values["ft"]) == {"lr"}
    assert doc["commands"] == ["unlearnlab tune --protocol digits-random10 --method ft --trials 2 --seeds 1"]
    assert sorted(cache_dir.glob("original-*.pt"))  # the protocol's per-seed original, in the shared cache
    assert template_name("fmnist-class3") == "fmnist-class<c>" and template_name("fmnist-random10") == "fmnist-random10"
    from unlearnlab.protocols import get_protocol

    assert set(tuned_hparams("fmnist-random10")) <= set(get_protocol("fmnist-random10").methods)  # the committed file
    both = CliRunner().invoke(app, ["tune", "--protocol", "digits-random10", "--all-methods", "--method", "ft",
                                    "--out", str(out)])
    assert both.exit_code == 2 and "not both" in both.output


def test_protocol_values_are_the_budgets_joined_by_the_selected_values(monkeypatch):
    from unlearnlab import protocols_fmnist

    monkeypatch.setattr(protocols_fmnist, "tuned_hparams", lambda name: {"ft": {"lr": 0.5, "epochs": 3}})
    values = protocols_fmnist.protocol_hparams("fmnist-random10")
    assert values["ft"] == {"epochs": 3, "lr": 0.5} and values["rl"] == {"epochs": 2} and values["ga"] == {"epochs": 1}
