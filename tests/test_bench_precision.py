"""bench/bench_interpolation_precision.py: exact shares on hand-made checkpoints (its smoke mode: test_bench_smoke.py)."""

import importlib.util

import torch
from safetensors.torch import save_file

from conftest import REPO
from safety_landscape.directions import CheckpointReader

SCRIPT = REPO / "bench" / "bench_interpolation_precision.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_interpolation_precision", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_unchanged_shares_match_the_bfloat16_spacing(tmp_path):
    # bf16 numbers next to 1.0 are 2^-7 apart: steps of 2^-7 or more survive, smaller ones round back to 1
    theta = {"w": torch.ones(4)}
    endpoint = {"w": torch.tensor([1.0 + 2**-10, 1.0, 1.0 + 2**-6, 1.0])}
    for name, tensors in (("theta", theta), ("endpoint", endpoint)):
        (tmp_path / name).mkdir()
        save_file(tensors, str(tmp_path / name / "model.safetensors"))
    bench = load_bench()
    counts = bench.unchanged_counts(
        CheckpointReader(tmp_path / "theta"), CheckpointReader(tmp_path / "endpoint"), [0.25, 0.5, 1.0], []
    )
    assert counts[("bfloat16", "float32", 1.0)] == [2, 1]  # 1 + 2^-10 rounds to 1, 1 + 2^-6 is a bf16 number
    assert counts[("bfloat16", "float32", 0.5)] == [2, 1]  # 1 + 2^-7 survives
    assert counts[("bfloat16", "float32", 0.25)] == [2, 2]  # 1 + 2^-8 is half a spacing: ties to even, back to 1
    assert counts[("float32", "float32", 0.25)] == [2, 0]
    assert counts[("bfloat16", "bfloat16", 1.0)] == [2, 1]  # d itself is exact in bf16; the sum rounds as before
