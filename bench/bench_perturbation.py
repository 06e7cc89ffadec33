"""Weight-update time of one grid point, W = W0 + a*d1 + b*d2, for each offload plan, on a GPU.

Builds a model of the given shape with random bf16 weights on the GPU (default: Llama-2-7B), two
random bf16 directions over every non-norm tensor, and times `points.Perturber.set` for a 2D
point with the original weights and directions kept on the GPU ("none"), in pinned host memory
("cpu"), or read back from safetensors files on disk ("disk"). Also checks that returning to
(0, 0) restores every parameter bit for bit.

    PYTHONPATH=src python3 bench/bench_perturbation.py --out perturbation.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
from safetensors.torch import save_file

from safety_landscape.directions import Direction, ShardWriter
from safety_landscape.points import LazyTensors, Perturber


def timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=4096)
    parser.add_argument("--intermediate", type=int, default=11008)
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--plans", default="none,cpu,disk")
    parser.add_argument("--out", type=Path, default=Path("perturbation.json"))
    args = parser.parse_args()
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        hidden_size=args.hidden,
        intermediate_size=args.intermediate,
        num_hidden_layers=args.layers,
        num_attention_heads=32,
        num_key_value_heads=32,
        vocab_size=32000,
    )
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16).eval()
    params = dict(model.named_parameters())
    names = [n for n in params if "norm" not in n]
    gen = torch.Generator(device="cuda").manual_seed(0)
    directions = [
        {n: torch.randn(params[n].shape, generator=gen, device="cuda", dtype=torch.bfloat16) for n in names} for _ in range(2)
    ]
    result = {
        "parameters": sum(p.numel() for p in params.values()),
        "perturbed_tensors": len(names),
        "gpu": torch.cuda.get_device_name(),
    }
    tmp = Path(tempfile.mkdtemp())
    checkpoint = None
    for plan in args.plans.split(","):
        if plan == "none":
            terms = directions
        elif plan == "cpu":
            terms = [{n: t.cpu().pin_memory() for n, t in d.items()} for d in directions]
        else:
            if checkpoint is None:
                checkpoint = tmp / "model"
                checkpoint.mkdir()
                save_file({n: p.detach().cpu() for n, p in params.items()}, str(checkpoint / "model.safetensors"))
                for i, d in enumerate(directions):
                    (tmp / f"d{i}").mkdir()
                    writer = ShardWriter(tmp / f"d{i}", 2 << 30)
                    for n, t in d.items():
                        writer.add(n, t.cpu())
                    writer.close({})
            terms = [LazyTensors(Direction(tmp / f"d{i}")) for i in range(2)]
        w0 = {n: params[n].detach().clone() for n in names[:4]} if plan == "none" else None
        perturber = Perturber(model, plan, str(checkpoint) if plan == "disk" else None)
        move = partial(perturber.set, [(terms[0], 0.1), (terms[1], -0.2)])
        first = timed(move, 1)[0]
        times = timed(move, args.repeats)
        restore = timed(partial(perturber.set, [(terms[0], 0.0), (terms[1], 0.0)]), 1)[0]
        entry = {"first_call_s": first, "update_s": statistics.median(times), "runs_s": times, "restore_s": restore}
        if w0 is not None:
            entry["restore_bit_exact"] = all(torch.equal(params[n], w0[n]) for n in w0)
        entry["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / 2**30
        result[plan] = entry
        print(plan, json.dumps(entry), flush=True)
        del perturber, terms, move
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
