"""Presets of the optional language package are found by name without importing it first."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("transformers")



def test_an_llm_preset_name_loads_the_language_package_on_first_use():
    code = ("import sys, unlearnlab as ul; assert 'unlearnlab.language' not in sys.modules; "
            "print(ul.get_method('llm/npo-gd').families)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "language_model" in out

