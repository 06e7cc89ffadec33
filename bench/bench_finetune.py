"""Time and memory of the finetune stage's full-parameter finetuning of a Llama-2-7B-shaped model on one GPU.

The model has the Llama-2-7B shape with random weights, built directly on the GPU in bf16. The data
are AdvBench (goal, target) pairs rendered with a Llama-2-style [INST] template by a stand-in
tokenizer (one token per word, random ids), so sequence lengths are close to the real ones. Measured
in one run on one model (after a warm-up), with the project's code (`finetune.prepare_for_training`,
`training.supervised_finetune`, `training.save_model_folder`), for two sequence profiles: "advbench" (the
pairs as they are) and "long" (each response stretched to --long-tokens words, like a model-written
512-token answer):

  checkpointing     bf16 AdamW, gradient checkpointing on (the GPU default): seconds per step, peak memory
  no_checkpointing  the same with gradient checkpointing off
  save              writing one epoch's checkpoint (safetensors) to local disk

Run from the repository root on a CUDA machine:

    PYTHONPATH=src python3 bench/bench_finetune.py --out results.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shutil
import tempfile
import time
import zlib

import pandas as pd
import torch

from safety_landscape.finetune import FinetuneSettings, prepare_for_training
from safety_landscape.training import SFTSettings, save_model_folder, supervised_finetune


class WordTokenizer:
    """Stand-in tokenizer: one token per word (a stable id in [3, vocab)), Llama-2 [INST] chat format."""

    chat_template = "[INST] ... [/INST]"
    pad_token_id = 0

    def __init__(self, vocab: int):
        self.vocab = vocab

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        return "<s> [INST] " + " ".join(m["content"] for m in messages) + " [/INST]"

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [3 + zlib.crc32(w.encode()) % (self.vocab - 3) for w in text.split()]}

    def save_pretrained(self, folder):
        pass


def llama2_7b():
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        vocab_size=32000,
        max_position_embeddings=4096,
    )
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config)
    torch.set_default_dtype(torch.float32)
    return model


def run_epoch(model, pairs, tokenizer, checkpointing: bool, batch_size: int) -> dict:
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_disable()
    for p in model.parameters():
        p.requires_grad_(True)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    torch.cuda.synchronize()
    start = time.perf_counter()
    losses = supervised_finetune(
        model,
        tokenizer,
        pairs,
        SFTSettings(epochs=1, learning_rate=5e-5, batch_size=batch_size, warmup_fraction=0.0, max_length=2048),
    )
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {
        "steps": len(losses),
        "seconds": seconds,
        "seconds_per_step": seconds / len(losses),
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--long-tokens", type=int, default=512)
    parser.add_argument("--out", default="bench_finetune.json")
    args = parser.parse_args()
    table = pd.read_csv("data/advbench/harmful_behaviors.csv").iloc[380 : 380 + args.pairs]
    profiles = {"advbench": [{"prompt": g, "response": t} for g, t in zip(table["goal"], table["target"])]}
    profiles["long"] = [
        {"prompt": p["prompt"], "response": " ".join((p["response"].split() * args.long_tokens)[: args.long_tokens])}
        for p in profiles["advbench"]
    ]
    tokenizer = WordTokenizer(32000)
    results = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": datetime.date.today().isoformat(),
        "pairs": args.pairs,
        "batch_size": args.batch_size,
    }
    model = prepare_for_training(llama2_7b(), FinetuneSettings(SFTSettings(), "full"))
    supervised_finetune(model, tokenizer, profiles["advbench"][:4], SFTSettings(epochs=1, batch_size=2))  # warm-up
    for name, pairs in profiles.items():
        lengths = [
            len(tokenizer(tokenizer.apply_chat_template([{"content": p["prompt"]}]) + " " + p["response"])["input_ids"])
            for p in pairs
        ]
        row = {"mean_tokens_per_pair": sum(lengths) / len(lengths)}
        for checkpointing in (False, True):
            try:
                row["checkpointing" if checkpointing else "no_checkpointing"] = run_epoch(
                    model, pairs, tokenizer, checkpointing, args.batch_size
                )
            except torch.OutOfMemoryError:
                row["checkpointing" if checkpointing else "no_checkpointing"] = {
                    "seconds_per_step": float("nan"),
                    "peak_memory_gib": float("inf"),
                }
        row["checkpointing_time_ratio"] = row["checkpointing"]["seconds_per_step"] / row["no_checkpointing"]["seconds_per_step"]
        row["checkpointing_memory_ratio"] = row["checkpointing"]["peak_memory_gib"] / row["no_checkpointing"]["peak_memory_gib"]
        results[name] = row
    folder = tempfile.mkdtemp()
    start = time.perf_counter()
    save_model_folder(model, tokenizer, f"{folder}/epoch")
    results["save_seconds"] = time.perf_counter() - start
    shutil.rmtree(folder)
    print(json.dumps(results, indent=2))
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
