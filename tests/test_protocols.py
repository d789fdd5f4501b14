"""Named protocols: registry and validation, `unlearnlab protocols`, `unlearnlab run --protocol NAME [--quick]`,
experiment dispatch, resume and errors."""

from __future__ import annotations

import shutil
import sqlite3
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from unlearnlab import protocols as P
from unlearnlab.bench import plan as runner
from unlearnlab.bench.config import RunConfig
from unlearnlab.bench.store import ResultStore, config_hash, run_key
from unlearnlab.cli import app
from unlearnlab.errors import UnlearnlabError
from unlearnlab.experiments import ExperimentContext


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})


def rows(out: Path) -> list[dict]:
    with ResultStore(out) as store:
        return store.rows()


def flat(text: str) -> str:
    return " ".join(text.split())


# ------------------------------------------------------------------------------------------------ registry


@pytest.mark.parametrize("quick", [False, True], ids=["full", "quick"])
@pytest.mark.parametrize("protocol", P.list_protocols(), ids=lambda p: p.name)
def test_every_registered_protocol_validates(protocol, quick):
    P.validate(protocol, quick)
    assert protocol.version >= 1 and protocol.description and protocol.paper
    if not protocol.is_experiment:
        sized = protocol.sized(quick)
        assert sized.methods[0] == "retrain"
        assert sized.seeds and min(sized.seeds) >= 1


@pytest.mark.parametrize(("name", "canonical", "forget"), [
    ("salun-random", "salun-cifar10-random10", "random:0.1"),
    ("salun-random1", "salun-cifar10-random1", "random:0.01"),
    ("salun-random5", "salun-cifar10-random5", "random:0.05"),
    ("salun-random10", "salun-cifar10-random10", "random:0.1"),
    ("salun-cifar10-random50", "salun-cifar10-random50", "random:0.5"),
    ("classwise", "salun-cifar10-class0", "class:0"),
    ("salun-cifar10-class7", "salun-cifar10-class7", "class:7"),
    ("dualoptim", "dualoptim-cifar10-random10", "random:0.1"),
    ("digits-class3", "digits-class3", "class:3"),
])
def test_names_and_aliases_resolve(name, canonical, forget):
    spec = P.get_protocol(name)
    assert spec.name == canonical
    assert spec.forget == forget
    assert spec.sized(True).forget == forget
    P.validate(spec)


def test_protocols_pin_the_paper_settings():
    salun = P.get_protocol("salun-random10")
    assert (salun.dataset, salun.model, salun.primary_mia) == ("cifar10", "resnet18", "mia_efficacy_svc_conf")
    assert (salun.recipe.epochs, salun.retrain_recipe.epochs, salun.seeds) == (182, 160, (1, 2, 3, 4, 5))
    dual = P.get_protocol("dualoptim")
    assert dual.primary_mia == "mia_lr_entropy_member_rate" and dual.seeds == (1, 2, 3, 4, 5)
    assert {"avg_gap_means", "gap_means_ua_ra_ta", "mean_metric_std"} <= set(dual.gap_variants)
    assert dual.sized(True).dataset == "digits"
    for name, fn in [("certified-budget", "certified_budget:run"), ("minnorm-poisoning", "minnorm:poisoning"),
                     ("minnorm-label-erasure", "minnorm:label_erasure"), ("minnorm-collapse", "minnorm:collapse")]:
        assert P.get_protocol(name).experiment == f"unlearnlab.experiments.{fn}"


def test_digits_protocols_run_five_seeds_and_the_plain_default_stays_the_labelled_smoke_demo():
    plain, named = runner.plan(RunConfig()), runner.plan(P.get_protocol("digits-random10").run_config())
    assert named.config.seeds == (1, 2, 3, 4, 5) and plain.config.seeds == (1, 2, 3)
    assert named.config.original_per_seed and not plain.config.original_per_seed
    assert (named.config.ulira_shadows, plain.config.ulira_shadows) == (16, None)
    assert named.methods == plain.methods and named.hparams == plain.hparams  # same methods and values
    assert (plain.protocol, named.protocol) == ("digits-random10 v1", "digits-random10 v2")
    assert named.task_key == f"digits-random10 v2|{plain.task_key}"  # never one run key for both
    c3 = runner.plan(P.get_protocol("digits-class3").run_config())
    assert c3.protocol == "digits-class3 v2" and c3.config.ulira_shadows is None  # U-LiRA: random forget sets


def test_real_data_and_neurips_protocols():
    fm = P.get_protocol("fmnist-random10")
    assert (fm.dataset, fm.model, fm.primary_mia, fm.seeds) == ("fashion-mnist", "fmnist_cnn", "mia_loss_lr_cv",
                                                                 (1, 2, 3, 4, 5))
    assert fm.ulira_shadows == 16 and fm.original_per_seed and fm.hparams["ft"]["epochs"] == 2
    assert P.get_protocol("fmnist-class4").forget == "class:4"
    kit = P.get_protocol("neurips23-kit")
    assert kit.test_half and kit.primary_mia == "mia_loss_lr_cv" and kit.sized(True).dataset == "digits"
    official = P.get_protocol("neurips23-official-N16")
    assert official.forget_quality_n == official.sized(True).forget_quality_n == 16
    assert official.run_config().forget_quality_n == 16
    with pytest.raises(P.UnlearnlabError, match="at least 2"):
        P.get_protocol("neurips23-official-N1")


def test_experiment_targets_outside_the_allow_list_are_refused():
    for target in ("os:system", "unlearnlab.experiments.minnorm", "unlearnlab.cli:app", "x:y:z"):
        with pytest.raises(P.UnlearnlabError, match="module:function"):
            P.resolve_experiment(target)


def test_protocols_command_lists_every_protocol():
    result = invoke("protocols")
    assert result.exit_code == 0, result.output
    for text in ("salun-cifar10-random10 v1", "salun-random10", "classwise", "dualoptim-cifar10-random10",
                 "digits-random10", "minnorm-collapse", "certified-budget", "mia_lr_entropy_member_rate",
                 "quick size"):
        assert text in result.output, text
    detail = invoke("protocols", "dualoptim")
    assert detail.exit_code == 0 and "mean_metric_std" in detail.output and "quick" in detail.output


# ------------------------------------------------------------------------------------------------ quick runs


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory) -> SimpleNamespace:
    """Three --quick protocol runs through the CLI with reduced methods/seeds, one shared model cache."""
    root = tmp_path_factory.mktemp("protocols")
    outs = SimpleNamespace(root=root, cache=root / "cache")
    runs = {
        "digits": ["--protocol", "digits-random10", "--quick", "--methods", "ft"],
        "classwise": ["--protocol", "classwise", "--quick", "--methods", "ft", "--seeds", "1"],
        "dualoptim": ["--protocol", "dualoptim", "--quick", "--methods", "rl"],  # quick seeds 1, 2
    }
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UNLEARNLAB_CACHE", str(outs.cache))
        for key, args in runs.items():
            out = root / key
            setattr(outs, key, SimpleNamespace(out=out, result=invoke("run", *args, "--threads", 1, "--out", out)))
    return outs


@pytest.mark.parametrize(("key", "label", "mia_header", "forget"), [
    ("digits", "digits-random10 v2 quick", "MIA-Efficacy", "random:0.1"),
    ("classwise", "salun-cifar10-class0 v1 quick", "MIA-Efficacy", "class:0"),
    ("dualoptim", "dualoptim-cifar10-random10 v1 quick", "MIA (mia_lr_entropy_member_rate)", "random:0.1"),
])
def test_quick_protocol_runs_end_to_end(quick_runs, key, label, mia_header, forget):
    run = getattr(quick_runs, key)
    assert run.result.exit_code == 0, run.result.output
    table = (run.out / "table.md").read_text()
    assert table.startswith(f"Protocol {label} (--quick size) · digits / mlp, 30 ep · forget ")
    mia = "mia_lr_entropy_member_rate" if key == "dualoptim" else "mia_efficacy_svc_conf"
    assert f"MIA = {mia}" in table.splitlines()[0]
    assert "| retrain (independent seeds) " in table
    assert mia_header in table
    got = rows(run.out)
    assert {r["protocol"] for r in got} == {label}
    assert all(r["status"] == "done" and r["task_key"].startswith(label) and forget in r["task_key"] for r in got)
    assert all(r["definitions"]["mia"] == mia for r in got)


def test_dualoptim_table_shows_the_gap_variants_and_avg_std(quick_runs):
    table = (quick_runs.dualoptim.out / "table.md").read_text()
    assert "mean_metric_std (Avg std)" in table and "avg_gap_means" in table and "(ToW)" in table
    extra = table[table.index("Gap variants"):]
    rl = next(ln for ln in extra.splitlines() if ln.startswith("| rl "))
    assert all(cell.strip() not in ("", "–") for cell in rl.split("|")[2:5])  # two seeds: std is a number
    assert "Gap variants" not in (quick_runs.digits.out / "table.md").read_text()
    report = invoke("report", quick_runs.dualoptim.out)
    assert report.exit_code == 0 and "mean_metric_std (Avg std)" in report.output


def test_resumed_protocol_run_recomputes_only_the_interrupted_row(quick_runs, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("UNLEARNLAB_CACHE", str(quick_runs.cache))
    out = tmp_path / "out"
    shutil.copytree(quick_runs.dualoptim.out, out)
    before = {(r["method"], r["seed"]): r["finished"] for r in rows(out)}
    with sqlite3.connect(out / "results.sqlite") as conn:  # killed between start() and finish()
        conn.execute("UPDATE runs SET status = 'running', finished = NULL WHERE method = 'rl' AND seed = 2")
    result = invoke("run", "--protocol", "dualoptim", "--quick", "--methods", "rl", "--out", out)
    assert result.exit_code == 0, result.output
    after = {(r["method"], r["seed"]): r["finished"] for r in rows(out)}
    assert len(rows(out)) == len(before) == 6  # retrain, its noise floor, rl × seeds 1, 2
    assert after[("rl", 2)] > before[("rl", 2)]
    assert {k: v for k, v in after.items() if k != ("rl", 2)} == {k: v for k, v in before.items() if k != ("rl", 2)}


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(("args", "message"), [
    (["--protocol", "salun-randm"], r"Unknown protocol 'salun-randm'\. Did you mean 'salun-random"),
    (["--protocol", "dualoptim", "--dataset", "digits"], r"--dataset: protocol 'dualoptim' pins"),
    (["--quick"], r"--quick needs --protocol"),
    (["--protocol", "digits-class10", "--quick"], r"[Cc]lass"),
], ids=["unknown", "pinned-flag", "quick-alone", "bad-class"])
def test_bad_protocol_use_exits_2_and_writes_nothing(tmp_path: Path, cache_dir: Path, args, message):
    out = tmp_path / "out"
    result = invoke("run", "--out", out, *args)
    assert result.exit_code == 2, result.output
    assert "error:" in result.output
    import re

    assert re.search(message, flat(result.output)), result.output
    assert not out.exists()


def test_config_file_cannot_change_a_pinned_key(tmp_path: Path, cache_dir: Path):
    config = tmp_path / "c.yaml"
    config.write_text("protocol: dualoptim\nquick: true\nrecipe: {epochs: 5}\n")
    result = invoke("run", "--config", config, "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert "pins recipe" in flat(result.output)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------ experiments

CALLS: list[ExperimentContext] = []
COMPUTED: list[int] = []


def _fake_experiment(ctx: ExperimentContext) -> str:
    CALLS.append(ctx)
    for seed in ctx.seeds:
        key = run_key(ctx.protocol, "fake", config_hash({"c": "cfg"}), seed)
        if ctx.store.is_complete(key):
            continue
        COMPUTED.append(seed)
        ctx.store.start(task_key=ctx.protocol, protocol=ctx.protocol, method="fake", seed=seed,
                        config={"c": "cfg"}, split_hash="none")
        ctx.store.finish(key, "done", {"value": float(seed)}, {"value": "the seed"}, {})
    table = "| seed | value |\n|---|---|\n" + "".join(f"| {s} | {s} |\n" for s in ctx.seeds)
    (ctx.out / "fake.md").write_text(table)
    return table


@pytest.fixture
def fake_experiment(monkeypatch):
    module = types.ModuleType("unlearnlab.experiments._fake")
    module.run = _fake_experiment
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(P, "EXPERIMENT_MODULES", P.EXPERIMENT_MODULES | {module.__name__,
                                                                          "unlearnlab.experiments._absent"})
    for spec in (
        P.Protocol(name="fake-exp", version=3, description="a fake", paper="none", seeds=(1, 2, 3),
                   experiment=f"{module.__name__}:run", quick=P.QuickSize(seeds=(1, 2))),
        P.Protocol(name="absent-exp", version=1, description="missing", paper="none", seeds=(1,),
                   experiment="unlearnlab.experiments._absent:run"),
    ):
        monkeypatch.setitem(P._PROTOCOLS, spec.name, spec)
    CALLS.clear()
    COMPUTED.clear()


def test_experiment_protocol_gets_a_context_stores_rows_and_resumes(fake_experiment, tmp_path: Path,
                                                                    cache_dir: Path):
    out = tmp_path / "out"
    result = invoke("run", "--protocol", "fake-exp", "--quick", "--device", "cpu", "--out", out)
    assert result.exit_code == 0, result.output
    ctx = CALLS[-1]
    assert (ctx.out, ctx.quick, ctx.seeds, ctx.protocol) == (out, True, (1, 2), "fake-exp v3 quick")
    assert isinstance(ctx.store, ResultStore) and ctx.device == torch.device("cpu")
    assert ctx.cache.root == cache_dir
    assert "| 2 | 2 |" in result.output and (out / "table.md").is_file() and (out / "fake.md").is_file()
    assert COMPUTED == [1, 2]
    again = invoke("run", "--protocol", "fake-exp", "--seeds", "1-3", "--out", out)  # full size, one more seed
    assert again.exit_code == 0, again.output
    assert CALLS[-1].quick is False and CALLS[-1].seeds == (1, 2, 3)
    assert COMPUTED == [1, 2, 1, 2, 3]  # the full size stores under its own label
    third = invoke("run", "--protocol", "fake-exp", "--seeds", "1-3", "--out", out)
    assert third.exit_code == 0 and COMPUTED == [1, 2, 1, 2, 3]  # resumed: nothing recomputed
    got = rows(out)
    assert len(got) == 5 and {r["protocol"] for r in got} == {"fake-exp v3 quick", "fake-exp v3"}


def test_report_rebuilds_an_experiment_table_without_recomputing(fake_experiment, tmp_path: Path,
                                                                  cache_dir: Path):
    out = tmp_path / "out"
    assert invoke("run", "--protocol", "fake-exp", "--quick", "--device", "cpu", "--out", out).exit_code == 0
    computed = list(COMPUTED)
    result = invoke("report", out)
    assert result.exit_code == 0, result.output
    assert "| 2 | 2 |" in result.output and COMPUTED == computed
    assert invoke("report", out, "--format", "csv").exit_code == 2  # experiments render Markdown only


def test_experiment_protocol_without_its_module_says_so(fake_experiment, tmp_path: Path, cache_dir: Path):
    out = tmp_path / "out"
    result = invoke("run", "--protocol", "absent-exp", "--out", out)
    assert result.exit_code == 2, result.output
    assert "unlearnlab.experiments._absent is not available" in flat(result.output)
    assert not out.exists()


def test_experiment_protocol_refuses_grid_options(fake_experiment, tmp_path: Path):
    result = invoke("run", "--protocol", "fake-exp", "--methods", "ft", "--out", tmp_path / "out")
    assert result.exit_code == 2 and "is an experiment" in flat(result.output)
    assert not (tmp_path / "out").exists()


def _cifar_binary(path: Path, n: int, classes: int) -> None:
    """``n`` records of the official binary format: label byte(s) (CIFAR-100: coarse, fine) + 3072 pixels."""
    rng = np.random.RandomState(0)
    fine = np.arange(n) % classes
    labels = fine[:, None] if classes == 10 else np.stack([fine // 5, fine], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.hstack([labels, rng.randint(0, 256, (n, 3072))]).astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def fake_cifar_root(tmp_path_factory) -> Path:
    """CIFAR-10 (5 × 100 train, 100 test) and CIFAR-100 (500 train, 100 test) files in the binary format."""
    root = tmp_path_factory.mktemp("cifar")
    for i in range(1, 6):
        _cifar_binary(root / "cifar-10-batches-bin" / f"data_batch_{i}.bin", 100, 10)
    _cifar_binary(root / "cifar-10-batches-bin" / "test_batch.bin", 100, 10)
    _cifar_binary(root / "cifar-100-binary" / "train.bin", 500, 100)
    _cifar_binary(root / "cifar-100-binary" / "test.bin", 100, 100)
    return root


@pytest.mark.parametrize("name", [p.name.replace("<c>", "3") for p in P.list_protocols()
                                  if not p.is_experiment and p.dataset in ("cifar10", "cifar100")])
def test_full_size_cifar_protocols_plan_against_real_format_files(name, fake_cifar_root):
    """The full size reads the official files and builds its model and split (training itself needs a GPU); a
    value the paper searched without publishing must be passed, and then the plan carries it."""
    spec = P.get_protocol(name)
    supplied = {m: dict.fromkeys(keys, 0.5) for m, keys in spec.searched.items()}
    if supplied:
        with pytest.raises(UnlearnlabError, match="searched by the paper"):
            runner.plan(spec.run_config(False, root=str(fake_cifar_root), out="unused", device="cpu"))
    plan = runner.plan(spec.run_config(False, root=str(fake_cifar_root), out="unused", device="cpu",
                                       hparams=supplied))
    assert plan.protocol == spec.label() and plan.methods[0] == "retrain"
    assert plan.config.model == "resnet18" and plan.recipe == spec.recipe
    for method, values in {**spec.hparams, **supplied}.items():
        assert all(plan.hparams[method][k] == v for k, v in values.items())


def test_a_protocols_method_values_cannot_be_changed_by_a_run(fake_cifar_root):
    spec = P.get_protocol("salun-cifar10-random30")
    assert spec.hparams["eupmu-reference"] == {"lr": 1e-2, "epsilon": -0.01}
    with pytest.raises(UnlearnlabError, match="pins eupmu-reference"):
        runner.plan(spec.run_config(False, root=str(fake_cifar_root), out="unused", device="cpu",
                                    hparams={"eupmu-reference": {"lr": 0.1}}))
