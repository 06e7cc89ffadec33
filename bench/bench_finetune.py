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

Checks (a failed one makes the script exit non-zero): every epoch that fits in memory runs
ceil(pairs / batch) steps with finite losses, and the saved checkpoint holds every parameter of the
model bit for bit.

Run from the repository root on a CUDA machine:

    PYTHONPATH=src python3 bench/bench_finetune.py --out results.json

--smoke runs the same on a tiny Llama shape, 8 pairs, batches of 4 and 32-word long responses in
seconds, on the GPU if there is one, else on the CPU (peak memory is then not measured):

    PYTHONPATH=src python3 bench/bench_finetune.py --smoke --out smoke.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import tempfile
import time
import zlib

import pandas as pd
import torch

from checks import Checks
from safety_landscape.directions import CheckpointReader
from safety_landscape.finetune import FinetuneSettings, prepare_for_training
from safety_landscape.training import SFTSettings, save_model_folder, supervised_finetune
from shapes import llama_config


class WordTokenizer:
    """Stand-in tokenizer: one token per word (a stable id in [3, vocab)), Llama-2 [INST] chat format."""

    chat_template = "[INST] ... [/INST]"
    pad_token_id = 0
    eos_token, eos_token_id = "</s>", 2

    def __init__(self, vocab: int):
        self.vocab = vocab

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        return "<s> [INST] " + " ".join(m["content"] for m in messages) + " [/INST]"

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [3 + zlib.crc32(w.encode()) % (self.vocab - 3) for w in text.split()]}

    def save_pretrained(self, folder):
        pass


LLAMA2_7B = {"hidden": 4096, "intermediate": 11008, "layers": 32, "heads": 32, "vocab": 32000}
SMOKE_SHAPE = {"hidden": 64, "intermediate": 128, "layers": 2, "heads": 4, "vocab": 512}
SMOKE = {"pairs": 8, "batch_size": 4, "long_tokens": 32}


def build_model(shape: dict, device: str):
    """A Llama of the given shape with random bf16 weights, built on `device`."""
    from transformers import LlamaForCausalLM

    config = llama_config(shape, vocab_size=shape["vocab"], max_position_embeddings=4096)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device(device):
        model = LlamaForCausalLM(config)
    torch.set_default_dtype(torch.float32)
    return model


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run_epoch(model, pairs, tokenizer, checkpointing: bool, batch_size: int) -> dict:
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_disable()
    for p in model.parameters():
        p.requires_grad_(True)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    synchronize()
    start = time.perf_counter()
    losses = supervised_finetune(
        model,
        tokenizer,
        pairs,
        SFTSettings(epochs=1, learning_rate=5e-5, batch_size=batch_size, warmup_fraction=0.0, max_length=2048),
    )
    synchronize()
    seconds = time.perf_counter() - start
    return {
        "steps": len(losses),
        "finite_losses": sum(math.isfinite(loss) for loss in losses),
        "seconds": seconds,
        "seconds_per_step": seconds / len(losses),
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
    }


def measure_profile(model, pairs, tokenizer, args, name: str, checks: Checks) -> dict:
    """One epoch of `pairs` without and with gradient checkpointing; an epoch that runs out of GPU memory is recorded as such."""
    lengths = [
        len(tokenizer(tokenizer.apply_chat_template([{"content": p["prompt"]}]) + " " + p["response"])["input_ids"])
        for p in pairs
    ]
    row = {"mean_tokens_per_pair": sum(lengths) / len(lengths)}
    steps = math.ceil(len(pairs) / args.batch_size)
    for checkpointing in (False, True):
        key = "checkpointing" if checkpointing else "no_checkpointing"
        try:
            row[key] = run_epoch(model, pairs, tokenizer, checkpointing, args.batch_size)
        except torch.OutOfMemoryError:
            row[key] = {"seconds_per_step": float("nan"), "peak_memory_gib": float("inf")}
            print(f"{name}, {key}: out of GPU memory", flush=True)
            continue
        checks.check(
            row[key]["steps"] == steps and row[key]["finite_losses"] == steps,
            f"{name}, {key}: {row[key]['steps']} steps ({len(pairs)} pairs / batch {args.batch_size}), "
            f"{row[key]['finite_losses']} finite losses",
        )
    row["checkpointing_time_ratio"] = row["checkpointing"]["seconds_per_step"] / row["no_checkpointing"]["seconds_per_step"]
    if row["checkpointing"]["peak_memory_gib"] is not None:
        row["checkpointing_memory_ratio"] = row["checkpointing"]["peak_memory_gib"] / row["no_checkpointing"]["peak_memory_gib"]
    return row


def measure_save(model, tokenizer, checks: Checks) -> float:
    """Seconds to write the model with save_model_folder; checks that the checkpoint holds every parameter bit for bit."""
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        save_model_folder(model, tokenizer, f"{folder}/epoch")
        seconds = time.perf_counter() - start
        saved = CheckpointReader(f"{folder}/epoch")
        params = dict(model.named_parameters())
        equal = sum(name in saved.location and torch.equal(saved.get(name), p.detach().cpu()) for name, p in params.items())
    checks.check(equal == len(params), f"save: the checkpoint holds {equal} of the {len(params)} parameters bit for bit")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--long-tokens", type=int, default=512)
    parser.add_argument("--out", default="bench_finetune.json")
    parser.add_argument("--smoke", action="store_true", help="tiny model, seconds; on the CPU when there is no GPU")
    args = parser.parse_args()
    if args.smoke:
        vars(args).update(SMOKE)
    elif not torch.cuda.is_available():
        raise SystemExit("this benchmark needs a CUDA GPU (--smoke runs on the CPU)")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    shape = SMOKE_SHAPE if args.smoke else LLAMA2_7B
    table = pd.read_csv("data/advbench/harmful_behaviors.csv").iloc[380 : 380 + args.pairs]
    profiles = {"advbench": [{"prompt": g, "response": t} for g, t in zip(table["goal"], table["target"])]}
    profiles["long"] = [
        {"prompt": p["prompt"], "response": " ".join((p["response"].split() * args.long_tokens)[: args.long_tokens])}
        for p in profiles["advbench"]
    ]
    tokenizer = WordTokenizer(shape["vocab"])
    results = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": datetime.date.today().isoformat(),
        "pairs": args.pairs,
        "batch_size": args.batch_size,
    }
    checks = Checks()
    model = prepare_for_training(build_model(shape, device), FinetuneSettings(SFTSettings(), "full"))
    supervised_finetune(model, tokenizer, profiles["advbench"][:4], SFTSettings(epochs=1, batch_size=2))  # warm-up
    for name, pairs in profiles.items():
        results[name] = measure_profile(model, pairs, tokenizer, args, name, checks)
    results["save_seconds"] = measure_save(model, tokenizer, checks)
    results["failed_checks"] = checks.failed
    print(json.dumps(results, indent=2))
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    checks.exit_if_failed()


if __name__ == "__main__":
    main()
