"""Scaling of a 2D landscape's generation over the GPUs of one machine.

The workflow runs one generation job per group of grid points and each job claims its own GPU
(`gpus.claim_gpus`). This benchmark does the same without Snakemake: it splits the points of a 2D
grid round-robin over 1 and then over N worker processes, each of which claims a GPU, builds a
Llama-2-7B-shaped bf16 model with random weights, and for each of its points sets
W = W0 + a*d1 + b*d2 and greedy-decodes 80 prompts with the project's CUDA engine (forced length).
Scaling = generation time on 1 GPU / the slowest worker's generation time on N GPUs.

    PYTHONPATH=src python3 bench/bench_multi_gpu.py --gpus 2 --out multi-gpu.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def worker(points: list[list[float]], args) -> None:
    from safety_landscape.gpus import claim_gpus, visible_gpus

    locks = claim_gpus(1, visible_gpus(), args.lock_dir)  # before CUDA starts
    import torch

    from bench_generation import IdTokenizer, build_model
    from safety_landscape.fastdecode import static_greedy_generate
    from safety_landscape.points import Perturber

    start = time.perf_counter()
    model = build_model(args).to(torch.bfloat16)
    names = [n for n, _ in model.named_parameters() if "norm" not in n]
    params = dict(model.named_parameters())
    gen = torch.Generator(device="cuda").manual_seed(0)
    d1, d2 = (
        {n: torch.randn(params[n].shape, generator=gen, device="cuda", dtype=torch.bfloat16) for n in names} for _ in range(2)
    )
    prompts = torch.randint(3, args.vocab, (args.prompts, args.prompt_len), generator=torch.Generator().manual_seed(1)).tolist()
    tokenizer = IdTokenizer(eos=2, pad=2)
    perturber = Perturber(model)
    static_greedy_generate(model, tokenizer, prompts[:8], 8, 8, min_new_tokens=8)  # warm-up
    torch.cuda.synchronize()
    ready = time.perf_counter()
    for a, b in points:
        perturber.set([(d1, a), (d2, b)])
        static_greedy_generate(model, tokenizer, prompts, args.new_tokens, args.prompts, min_new_tokens=args.new_tokens)
    torch.cuda.synchronize()
    done = time.perf_counter()
    print(
        json.dumps(
            {
                "gpu": torch.cuda.get_device_name(),
                "claimed": len(locks),
                "points": len(points),
                "setup_s": ready - start,
                "generation_s": done - ready,
            }
        ),
        flush=True,
    )


def run(n_gpus: int, points: list[list[float]], args) -> dict:
    shares = [points[i::n_gpus] for i in range(n_gpus)]
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--worker",
                json.dumps(share),
                "--lock-dir",
                args.lock_dir,
                "--prompts",
                str(args.prompts),
                "--new-tokens",
                str(args.new_tokens),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for share in shares
    ]
    reports = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError("a worker failed")
    return {
        "gpus": n_gpus,
        "wall_s": time.perf_counter() - start,
        "workers": reports,
        "generation_s": max(r["generation_s"] for r in reports),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpus", type=int, default=2)
    parser.add_argument("--grid", type=int, default=4, help="points per axis of the 2D grid")
    parser.add_argument("--prompts", type=int, default=80)
    parser.add_argument("--prompt-len", type=int, default=160)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--out", type=Path, default=Path("multi-gpu.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--lock-dir", default=tempfile.mkdtemp(prefix="gpu-locks-"))
    args = parser.parse_args()
    args.__dict__.update(vocab=32000, hidden=4096, intermediate=11008, layers=32, heads=32, seed=0)
    if args.worker:
        return worker(json.loads(args.worker), args)
    axis = [round(-0.1 + 0.2 * i / (args.grid - 1), 4) for i in range(args.grid)]
    points = [[a, b] for a in axis for b in axis]
    one = run(1, points, args)
    print(json.dumps(one), flush=True)
    many = run(args.gpus, points, args)
    print(json.dumps(many), flush=True)
    result = {
        "points": len(points),
        "prompts": args.prompts,
        "new_tokens": args.new_tokens,
        "one_gpu": one,
        "n_gpus": many,
        "scaling_generation": one["generation_s"] / many["generation_s"],
        "scaling_wall": one["wall_s"] / many["wall_s"],
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{len(points)} points: 1 GPU {one['generation_s']:.1f} s, {args.gpus} GPUs {many['generation_s']:.1f} s "
        f"-> scaling {result['scaling_generation']:.2f}x (wall {result['scaling_wall']:.2f}x)",
        flush=True,
    )


if __name__ == "__main__":
    main()
