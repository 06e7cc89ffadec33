"""Early stop on refusal: generation time with and without it, and proof that verdicts do not change.

Runs the HF engine on a model folder at several perturbation sizes along one random direction,
once with `stop_on_refusal` and once without, and reports seconds, tokens and keyword verdicts.

Check (a failed one makes the script exit non-zero): at every point, every prompt gets the same
keyword verdict with and without the early stop.

    python bench/bench_early_stop.py results/models/smollm2-135m-instruct-aligned/model --out early-stop.json

--smoke runs the same on a tiny model made for it in seconds: a 2-layer Llama (random embeddings, a
byte-level BPE tokenizer trained on the prompts) whose layers add nothing to the residual stream and
whose output head maps each token of "I cannot help with that." to the next, so that it answers every
prompt with that refusal, repeated, until the perturbation breaks the chain:

    PYTHONPATH=src python3 bench/bench_early_stop.py --smoke --out smoke.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from checks import Checks
from safety_landscape.decoding import render_prompts
from safety_landscape.directions import CheckpointReader, Direction, random_source, write_direction
from safety_landscape.engines import EngineOptions, HFEngine
from safety_landscape.judges import keyword_jailbroken
from safety_landscape.points import Term
from shapes import llama_config, tokenizer_fields

SMOKE = {"count": 4, "max_new_tokens": 24, "coefficients": "0,1,8", "threads": 1}
REFUSAL = "I cannot help with that."
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def train_tokenizer(texts: list[str]):
    """A byte-level BPE tokenizer (400 tokens) with a chat template, trained on `texts`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def successor_pairs(tokenizer, prompts: list[str]) -> list[tuple[int, int]]:
    """(token, next token) of the refusal loop: each prompt's last token starts it, its last token goes back to its first."""
    refusal = tokenizer(REFUSAL, add_special_tokens=False)["input_ids"]
    starts = {ids[-1] for ids in render_prompts(tokenizer, prompts, None, True)}
    pairs = [(s, refusal[0]) for s in starts] + list(zip(refusal, refusal[1:] + refusal[:1]))
    if len({token for token, _ in pairs}) != len(pairs):
        raise ValueError(f"a token of {REFUSAL!r} or a prompt end has two successors; the refusal loop is ambiguous")
    return pairs


def refusing_model(folder: Path, prompts: list[str]) -> str:
    """Write the tiny always-refusing Llama and its tokenizer as a safetensors folder; returns its path."""
    from transformers import LlamaForCausalLM

    tokenizer = train_tokenizer(prompts + [REFUSAL])
    shape = {"hidden": 64, "intermediate": 128, "layers": 2, "heads": 4}
    config = llama_config(shape, max_position_embeddings=512, tie_word_embeddings=False, **tokenizer_fields(tokenizer))
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        embeddings = model.model.embed_tokens.weight.normal_()
        head = model.lm_head.weight.zero_()
        for token, successor in successor_pairs(tokenizer, prompts):
            head[successor] += embeddings[token]
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return str(folder)


def measure_point(engine, ids, a: float, direction: Direction, args) -> dict:
    """Generate every prompt at W0 + a * d without and with the early stop: seconds, tokens, verdicts."""
    engine.set_point([Term(str(direction.folder), direction.digest, a)])
    row = {"a": a}
    for stop in (False, True):
        start = time.perf_counter()
        gens = engine.generate(ids, args.max_new_tokens, len(ids), stop)
        key = "early_stop" if stop else "full"
        row[f"{key}_seconds"] = time.perf_counter() - start
        row[f"{key}_tokens"] = sum(g.num_tokens for g in gens)
        row[f"{key}_verdicts"] = [keyword_jailbroken(g.text) for g in gens]
    row["asr"] = 100 * sum(row["full_verdicts"]) / len(ids)
    row["verdicts_equal"] = row["full_verdicts"] == row["early_stop_verdicts"]
    return row


def measure(model: str, prompts: list[str], args, checks: Checks) -> list[dict]:
    """Every point along one random direction of `model`, each checked for equal verdicts."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        write_direction(
            Path(tmp) / "d1", CheckpointReader(model), random_source(0, "layer"), ["norm"], torch.float32, 1 << 30, {}
        )
        direction = Direction(Path(tmp) / "d1")
        engine = HFEngine(EngineOptions(model, "float32", "cpu"))
        ids = render_prompts(engine.tokenizer, prompts, None, True)
        for a in [float(x) for x in args.coefficients.split(",")]:
            row = measure_point(engine, ids, a, direction, args)
            print(
                f"a={a:+.2f} ASR {row['asr']:5.1f}%  full {row['full_seconds']:6.1f} s {row['full_tokens']:5d} tok  "
                f"early stop {row['early_stop_seconds']:6.1f} s {row['early_stop_tokens']:5d} tok  "
                f"verdicts equal: {row['verdicts_equal']}",
                flush=True,
            )
            same = sum(f == e for f, e in zip(row["full_verdicts"], row["early_stop_verdicts"], strict=True))
            checks.check(
                same == len(ids), f"a={a:+.2f}: {same} of {len(ids)} prompts get the same verdict with and without early stop"
            )
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", help="HF model folder (safetensors)")
    parser.add_argument("--prompts", default="data/advbench/harmful_behaviors.csv")
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--coefficients", default="0,0.05,0.1,0.15,0.2,0.3")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("early-stop.json"))
    parser.add_argument("--smoke", action="store_true", help="a tiny always-refusing model made here, seconds")
    args = parser.parse_args()
    if args.smoke:
        vars(args).update(SMOKE)
    elif args.model is None:
        parser.error("give a model folder, or --smoke")
    torch.set_num_threads(args.threads)
    prompts = pd.read_csv(args.prompts)["goal"].tolist()[: args.count]
    checks = Checks()
    with tempfile.TemporaryDirectory() as tmp:
        model = refusing_model(Path(tmp), prompts) if args.smoke else args.model
        rows = measure(model, prompts, args, checks)
    total_full = sum(r["full_seconds"] for r in rows)
    total_stop = sum(r["early_stop_seconds"] for r in rows)
    summary = {
        "points": rows,
        "total_full_seconds": total_full,
        "total_early_stop_seconds": total_stop,
        "speedup": total_full / total_stop,
        "all_verdicts_equal": all(r["verdicts_equal"] for r in rows),
    }
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"total: full {total_full:.1f} s, early stop {total_stop:.1f} s, speedup {summary['speedup']:.2f}x, "
        f"all verdicts equal: {summary['all_verdicts_equal']}"
    )
    checks.exit_if_failed()


if __name__ == "__main__":
    main()
