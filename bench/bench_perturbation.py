"""Weight-update time of one grid point, W = W0 + a*d1 + b*d2, for each offload plan, on a GPU.

Builds a model of the given shape with random bf16 weights on the GPU (default: Llama-2-7B), two
random bf16 directions over every non-norm tensor, and times `points.Perturber.set` for a 2D
point with the original weights and directions kept on the GPU ("none"), in pinned host memory
("cpu"), or read back from safetensors files on disk ("disk").

Checks, per plan (a failed one makes the script exit non-zero): the point changes every perturbed
tensor, and returning to (0, 0) restores every parameter bit for bit (compared with a host copy of
the weights taken before the first plan).

    PYTHONPATH=src python3 bench/bench_perturbation.py --out perturbation.json

--smoke runs every plan and check on a tiny model in seconds, on the GPU if there is one, else on the
CPU, where the "cpu" plan keeps its copies in ordinary host memory (pinning needs a GPU):

    PYTHONPATH=src python3 bench/bench_perturbation.py --smoke --out smoke.json
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

from checks import Checks, skipped
from safety_landscape.directions import Direction, ShardWriter
from safety_landscape.points import LazyTensors, Perturber
from shapes import llama_config

SMOKE = {"hidden": 64, "intermediate": 128, "layers": 2, "heads": 4, "vocab": 256, "repeats": 2}


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        fn()
        synchronize()
        times.append(time.perf_counter() - start)
    return times


def build_model(args, device: str):
    """A Llama of the given shape with random bf16 weights on `device`."""
    from transformers import LlamaForCausalLM

    shape = {"hidden": args.hidden, "intermediate": args.intermediate, "layers": args.layers, "heads": args.heads}
    config = llama_config(shape, vocab_size=args.vocab)
    with torch.device(device):
        return LlamaForCausalLM(config).to(torch.bfloat16).eval()


def random_directions(params: dict, names: list[str], device: str) -> list[dict[str, torch.Tensor]]:
    """Two random bf16 directions over `names`."""
    gen = torch.Generator(device=device).manual_seed(0)
    return [
        {n: torch.randn(params[n].shape, generator=gen, device=device, dtype=torch.bfloat16) for n in names} for _ in range(2)
    ]


def write_checkpoint_and_directions(folder: Path, w0: dict, directions: list[dict]) -> Path:
    """The original weights as a safetensors checkpoint and each direction as a direction folder (d0, d1) under `folder`."""
    checkpoint = folder / "model"
    checkpoint.mkdir()
    save_file(w0, str(checkpoint / "model.safetensors"))
    for i, d in enumerate(directions):
        (folder / f"d{i}").mkdir()
        writer = ShardWriter(folder / f"d{i}", 2 << 30, identity=f"benchmark direction {i}")
        for n, t in d.items():
            writer.add(n, t.cpu())
        writer.close({})
    return checkpoint


def plan_terms(plan: str, directions: list[dict], folder: Path) -> list:
    """The directions where `plan` keeps them: as they are (on the device), in host memory (pinned with a GPU), or on disk."""
    if plan == "none":
        return directions
    if plan == "cpu":
        pin = torch.cuda.is_available()
        return [{n: t.cpu().pin_memory() if pin else t.cpu() for n, t in d.items()} for d in directions]
    return [LazyTensors(Direction(folder / f"d{i}")) for i in range(len(directions))]


def count_equal(params: dict, reference: dict, names) -> int:
    """How many of `names` are bit for bit equal to their host `reference` copy."""
    return sum(torch.equal(params[n].detach().cpu(), reference[n]) for n in names)


def measure_plan(plan: str, model, terms: list, checkpoint: Path, w0: dict, args, checks: Checks) -> dict:
    """Time the point (0.1, -0.2) and the return to (0, 0) with one offload plan; check the update and the restore."""
    params = dict(model.named_parameters())
    perturbed = sorted(terms[0].keys())
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    perturber = Perturber(model, plan, str(checkpoint) if plan == "disk" else None)
    move = partial(perturber.set, [(terms[0], 0.1), (terms[1], -0.2)])
    first = timed(move, 1)[0]
    times = timed(move, args.repeats)
    changed = len(perturbed) - count_equal(params, w0, perturbed)
    restore = timed(partial(perturber.set, [(terms[0], 0.0), (terms[1], 0.0)]), 1)[0]
    restored = count_equal(params, w0, params)
    checks.check(changed == len(perturbed), f"{plan}: the point changed {changed} of the {len(perturbed)} perturbed tensors")
    checks.check(
        restored == len(params), f"{plan}: (0, 0) restored {restored} of the {len(params)} parameters bit for bit (torch.equal)"
    )
    return {
        "first_call_s": first,
        "update_s": statistics.median(times),
        "runs_s": times,
        "restore_s": restore,
        "restore_bit_exact": restored == len(params),
        "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=4096)
    parser.add_argument("--intermediate", type=int, default=11008)
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--plans", default="none,cpu,disk")
    parser.add_argument("--out", type=Path, default=Path("perturbation.json"))
    parser.add_argument("--smoke", action="store_true", help="tiny model, seconds; on the CPU when there is no GPU")
    args = parser.parse_args()
    if args.smoke:
        vars(args).update(SMOKE)
    elif not torch.cuda.is_available():
        raise SystemExit("this benchmark needs a CUDA GPU (--smoke runs on the CPU)")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        skipped("pinned host memory of the 'cpu' plan", "pinning needs a CUDA GPU; its copies stay in ordinary host memory")
    model = build_model(args, device)
    params = dict(model.named_parameters())
    names = [n for n in params if "norm" not in n]
    directions = random_directions(params, names, device)
    w0 = {n: p.detach().cpu().clone() for n, p in params.items()}
    result = {
        "parameters": sum(p.numel() for p in params.values()),
        "perturbed_tensors": len(names),
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
    }
    checks = Checks()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        for plan in args.plans.split(","):
            if plan == "disk" and checkpoint is None:
                checkpoint = write_checkpoint_and_directions(Path(tmp), w0, directions)
            terms = plan_terms(plan, directions, Path(tmp))
            result[plan] = measure_plan(plan, model, terms, checkpoint, w0, args, checks)
            print(plan, json.dumps(result[plan]), flush=True)
            del terms
            torch.cuda.empty_cache()
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    checks.exit_if_failed()


if __name__ == "__main__":
    main()
