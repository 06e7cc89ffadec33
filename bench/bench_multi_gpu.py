"""Scaling of a 2D landscape's generation over the GPUs of one machine.

The workflow runs one generation job per group of grid points and each job claims its own GPU
(`gpus.claim_gpus`). This benchmark does the same without Snakemake: it splits the points of a 2D
grid round-robin over 1 and then over N worker processes, each of which claims a GPU, builds a
Llama-2-7B-shaped bf16 model with random weights, and for each of its points sets
W = W0 + a*d1 + b*d2 and greedy-decodes 80 prompts with the project's CUDA engine (forced length).
Scaling = generation time on 1 GPU / the slowest worker's generation time on N GPUs.

Checks (a failed one makes the script exit non-zero): in each run the workers claimed different GPUs
and generated every point exactly once, every output has the forced length, and every point's outputs
(a digest of all its texts) are the same on 1 and on N GPUs.

    PYTHONPATH=src python3 bench/bench_multi_gpu.py --gpus 2 --out multi-gpu.json

--smoke runs the same split, claims and checks with a tiny model and a 2 x 2 grid in seconds. With fewer
than 2 visible GPUs the workers claim lock slots named cpu-0 and cpu-1 instead and decode on the CPU with
`decoding.greedy_generate`, as the `hf` engine does there (fastdecode's CUDA-graph engine needs a GPU):

    PYTHONPATH=src python3 bench/bench_multi_gpu.py --smoke --out smoke.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from checks import Checks, skipped

MODEL = {"vocab": 32000, "hidden": 4096, "intermediate": 11008, "layers": 32, "heads": 32, "seed": 0}
SMOKE_MODEL = {"vocab": 256, "hidden": 64, "intermediate": 128, "layers": 2, "heads": 4, "seed": 0}
SMOKE = {"gpus": 2, "grid": 2, "prompts": 4, "prompt_len": 8, "new_tokens": 4}


def outputs_digest(gens) -> str:
    """sha256 over the texts of one point's outputs, in prompt order."""
    return hashlib.sha256(json.dumps([g.text for g in gens]).encode()).hexdigest()


def worker(job: dict) -> None:
    """Claim a GPU, build the model, generate the job's points; print a JSON report as the last line."""
    from safety_landscape.gpus import claim_gpus

    locks = claim_gpus(1, job["gpu_ids"], job["lock_dir"])  # before CUDA starts
    import torch

    from bench_generation import IdTokenizer, build_model
    from safety_landscape.decoding import greedy_generate
    from safety_landscape.fastdecode import static_greedy_generate
    from safety_landscape.points import Perturber

    settings = argparse.Namespace(**job["settings"])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    decode = static_greedy_generate if device == "cuda" else greedy_generate
    start = time.perf_counter()
    model = build_model(settings, device).to(torch.bfloat16)
    names = [n for n, _ in model.named_parameters() if "norm" not in n]
    params = dict(model.named_parameters())
    gen = torch.Generator(device=device).manual_seed(0)
    d1, d2 = (
        {n: torch.randn(params[n].shape, generator=gen, device=device, dtype=torch.bfloat16) for n in names} for _ in range(2)
    )
    prompts = torch.randint(
        3, settings.vocab, (settings.prompts, settings.prompt_len), generator=torch.Generator().manual_seed(1)
    ).tolist()
    tokenizer = IdTokenizer(eos=2, pad=2)
    perturber = Perturber(model)
    n = settings.new_tokens
    decode(model, tokenizer, prompts[:8], 8, 8, min_new_tokens=8)  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    ready = time.perf_counter()
    digests, forced = {}, 0
    for a, b in job["points"]:
        perturber.set([(d1, a), (d2, b)])
        gens = decode(model, tokenizer, prompts, n, settings.prompts, min_new_tokens=n)
        digests[json.dumps([a, b])] = outputs_digest(gens)
        forced += sum(g.num_tokens == n and g.finish_reason == "length" for g in gens)
    if device == "cuda":
        torch.cuda.synchronize()
    done = time.perf_counter()
    report = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "claimed": os.environ["CUDA_VISIBLE_DEVICES"],
        "locks": len(locks),
        "points": len(job["points"]),
        "outputs": len(job["points"]) * len(prompts),
        "forced_length_outputs": forced,
        "digests": digests,
        "setup_s": ready - start,
        "generation_s": done - ready,
    }
    print(json.dumps(report), flush=True)


def run(n_workers: int, points: list[list[float]], gpu_ids: list[str], settings: dict, lock_dir: str) -> dict:
    """Deal the points round-robin to `n_workers` worker processes; their reports and the time of the slowest."""
    shares = [points[i::n_workers] for i in range(n_workers)]
    start = time.perf_counter()
    jobs = [{"points": share, "gpu_ids": gpu_ids, "settings": settings, "lock_dir": lock_dir} for share in shares]
    procs = [
        subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(job)], stdout=subprocess.PIPE, text=True)
        for job in jobs
    ]
    outputs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError("a worker failed")
    reports = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    return {
        "gpus": n_workers,
        "wall_s": time.perf_counter() - start,
        "workers": reports,
        "generation_s": max(r["generation_s"] for r in reports),
    }


def check_run(result: dict, points: list[list[float]], settings: dict, checks: Checks) -> dict[str, str]:
    """Check one run's claims, coverage and output lengths; returns its digest per point."""
    workers, n = result["workers"], result["gpus"]
    claimed = sorted(r["claimed"] for r in workers)
    checks.check(
        len(set(claimed)) == n, f"{n} worker(s): each claimed a different GPU lock (CUDA_VISIBLE_DEVICES {', '.join(claimed)})"
    )
    digests = {point: digest for r in workers for point, digest in r["digests"].items()}
    done = sum(r["points"] for r in workers)
    expected = {json.dumps(p) for p in points}
    checks.check(
        done == len(points) and set(digests) == expected,
        f"{n} worker(s): {done} points generated, each of the {len(points)} once",
    )
    forced, outputs = sum(r["forced_length_outputs"] for r in workers), sum(r["outputs"] for r in workers)
    checks.check(
        forced == outputs, f"{n} worker(s): {forced} of {outputs} outputs have {settings['new_tokens']} tokens, finish 'length'"
    )
    return digests


def gpu_ids_or_slots(args) -> list[str]:
    """The visible GPUs; in smoke mode with fewer than --gpus, lock slots named cpu-0, cpu-1, ... instead (a worker
    that claims one sees no GPU, since CUDA_VISIBLE_DEVICES then names none, and decodes on the CPU)."""
    from safety_landscape.gpus import visible_gpus

    gpus = visible_gpus()
    if len(gpus) >= args.gpus:
        return gpus
    if not args.smoke:
        raise SystemExit(f"--gpus {args.gpus}, but {len(gpus)} GPU(s) are visible (--smoke runs on the CPU)")
    slots = [f"cpu-{i}" for i in range(args.gpus)]
    skipped(
        "GPUs and fastdecode's CUDA-graph engine",
        f"{len(gpus)} GPU(s) visible for {args.gpus} workers; the workers claim the lock slots {slots} with "
        "gpus.claim_gpus and decode on the CPU with decoding.greedy_generate",
    )
    return slots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpus", type=int, default=2)
    parser.add_argument("--grid", type=int, default=4, help="points per axis of the 2D grid")
    parser.add_argument("--prompts", type=int, default=80)
    parser.add_argument("--prompt-len", type=int, default=160)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--out", type=Path, default=Path("multi-gpu.json"))
    parser.add_argument("--smoke", action="store_true", help="tiny model, 2 x 2 grid, 2 workers; on the CPU without GPUs")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))
    if args.smoke:
        vars(args).update(SMOKE)
    settings = (SMOKE_MODEL if args.smoke else MODEL) | {
        "prompts": args.prompts,
        "prompt_len": args.prompt_len,
        "new_tokens": args.new_tokens,
    }
    gpu_ids = gpu_ids_or_slots(args)
    axis = [round(-0.1 + 0.2 * i / (args.grid - 1), 4) for i in range(args.grid)]
    points = [[a, b] for a in axis for b in axis]
    checks = Checks()
    with tempfile.TemporaryDirectory(prefix="gpu-locks-") as lock_dir:
        one = run(1, points, gpu_ids, settings, lock_dir)
        print(json.dumps(one), flush=True)
        many = run(args.gpus, points, gpu_ids, settings, lock_dir)
        print(json.dumps(many), flush=True)
    one_digests, many_digests = check_run(one, points, settings, checks), check_run(many, points, settings, checks)
    same = sum(one_digests.get(p) == many_digests.get(p) for p in one_digests)
    checks.check(
        same == len(points), f"{same} of {len(points)} points have identical outputs (all texts) on 1 and {args.gpus} workers"
    )
    result = {
        "points": len(points),
        "prompts": args.prompts,
        "new_tokens": args.new_tokens,
        "one_gpu": one,
        "n_gpus": many,
        "scaling_generation": one["generation_s"] / many["generation_s"],
        "scaling_wall": one["wall_s"] / many["wall_s"],
        "failed_checks": checks.failed,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{len(points)} points: 1 worker {one['generation_s']:.1f} s, {args.gpus} workers {many['generation_s']:.1f} s "
        f"-> scaling {result['scaling_generation']:.2f}x (wall {result['scaling_wall']:.2f}x)",
        flush=True,
    )
    checks.exit_if_failed()


if __name__ == "__main__":
    main()
