"""``unlearnlab methods`` as plain greppable text when piped, as JSON, one method in full; ``run --help``
shows the defaults."""

from __future__ import annotations

import json
import re

from typer.testing import CliRunner

import unlearnlab as ul
from unlearnlab.bench.config import DEFAULT_METHODS
from unlearnlab.cli import app
from unlearnlab.cli.methods import describe


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "80"})  # a narrow terminal must not truncate


def _value(v: object) -> str:
    return json.dumps(v) if isinstance(v, str) else str(v)


def test_piped_methods_are_one_tab_separated_line_each_with_every_default():
    result = invoke("methods")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "# name\tcomposition\tpaper\taliases\tdefaults"
    by_name = {line.split("\t")[0]: line.split("\t") for line in lines[1:]}
    assert list(by_name) == ul.list_methods()
    for name, cells in by_name.items():
        info = ul.get_method(name)
        assert cells[1:3] == [info.composition, info.paper]
        assert cells[3] == (",".join(info.aliases) or "-")
        assert cells[4] == ", ".join(f"{k}={_value(v)}" for k, v in info.defaults.items()), name  # in full
    assert "…" not in result.output


def test_methods_as_json_carry_the_registry_data():
    result = invoke("methods", "--format", "json")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert [m["name"] for m in listed] == ul.list_methods()
    salun = next(m for m in listed if m["name"] == "salun")
    assert salun == json.loads(json.dumps(describe("salun"), default=str))
    assert set(salun["defaults"]) == set(ul.get_method("salun").defaults)


def test_methods_name_shows_one_method_in_full_and_aliases_resolve():
    info = ul.get_method("neggrad-plus")
    for name in ("neggrad-plus", *info.aliases):
        result = invoke("methods", name)
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert lines[0] == "neggrad-plus"
        assert f"  composition: {info.composition}" in lines and f"  paper: {info.paper}" in lines
        assert f"  runs on: {', '.join(info.families)}" in lines
        for key, value in info.defaults.items():
            assert f"    {key} = {_value(value)}" in lines
    detail = json.loads(invoke("methods", "salun", "--format", "json").output)
    assert detail["name"] == "salun" and detail["reference"] == json.loads(json.dumps(
        dict(ul.get_method("salun").reference), default=str))


def test_unknown_method_name_or_empty_filter_exits_2():
    result = invoke("methods", "salum")
    assert result.exit_code == 2 and "Did you mean 'salun'" in result.output
    assert "Traceback" not in result.output
    empty = invoke("methods", "zz*")
    assert empty.exit_code == 2 and "No method matches 'zz*'" in empty.output
    assert invoke("methods", "--format", "yaml").exit_code == 2


def test_methods_filter_keeps_the_matching_names():
    result = invoke("methods", "*dual*", "--no-defaults")
    names = [line.split("\t")[0] for line in result.output.splitlines()[1:]]
    assert names and all("dual" in n for n in names)
    assert result.output.splitlines()[0] == "# name\tcomposition\tpaper\taliases"


def test_run_help_shows_the_defaults():
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", invoke("run", "--help").output).split())  # no box drawing
    for default in ("digits", "mlp", "random:0.1", "runs/default", "default: (1, 2, 3)", "CUDA when present",
                    "serial, or local with --workers > 1"):
        assert default in text, default
    assert all(m in text for m in DEFAULT_METHODS)  # the default method list, not cut short


def test_protocol_definition_shows_its_pinned_and_searched_method_values():
    pinned = invoke("protocols", "salun-cifar10-random50")
    assert pinned.exit_code == 0
    assert "eupmu-reference: epsilon=-0.05, lambda_init=0.3, lr=0.03" in " ".join(pinned.output.split())
    searched = " ".join(invoke("protocols", "dualoptim").output.split())
    assert "dualoptim/salun: forget_lr" in searched and "--set METHOD.KEY=VALUE" in searched
