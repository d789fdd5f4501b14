"""bench/gpu_check.py runs end to end at its tiny size on the CPU (the GPU run uses the same code)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import gpu_check  # noqa: E402


def test_tiny_gpu_check_runs_every_section_and_writes_its_summary(tmp_path):
    code = gpu_check.main(["--device", "cpu", "--size", "tiny", "--out", str(tmp_path), "--precision", "bf16",
                           "--methods", "ft,salun", "--step-methods", "ft,dualoptim/salun"])
    data = json.loads((tmp_path / "gpu_check.json").read_text())
    sections = data["sections"]
    assert set(sections) == set(gpu_check.SECTIONS)
    assert code == 0, sections
    for name in ("ft", "salun"):
        row = sections["methods"][name]
        assert row["ok"] and row["finite"] and row["changed"]
        assert row["bit_identical_to_fp32"] is False  # the bf16 arm really ran in bf16
    assert sections["methods"]["salun"]["frozen_identical"]
    assert {"fp32", "bf16"} <= set(sections["throughput"])
    assert math.isfinite(sections["throughput"]["bf16"]["train_vs_plain_fp32_bare"])
    # timings at this size are noise: only their presence is checked
    assert math.isfinite(sections["steps"]["dualoptim/salun"]["vs_ft"])
    assert math.isfinite(sections["projection"]["minnorm-og vs mnog/gd"]["ratio"])
    assert "generation ddpm/salun (digits model)" in sections["families"]
    assert "| ft |" in (tmp_path / "gpu_check.md").read_text()
