"""Peak memory of streaming direction generation for a >= 1B-parameter model.

Writes a TinyLlama-1.1B-shaped checkpoint with random weights as safetensors shards (tensor by
tensor, never the whole model), then generates one random direction from it in a child process
and reports that process's peak resident memory against the model size, the largest tensor and
the output shard size.

Check (a failed one makes the script exit non-zero): the direction holds every non-norm tensor of
the checkpoint, each with the checkpoint's shape, in float32.

    python bench/bench_direction_memory.py --workdir /tmp/dirbench --out bench-direction-memory.json

--smoke does the same with a tiny Llama shape and 64 KiB shards (input and output) in seconds:

    PYTHONPATH=src python3 bench/bench_direction_memory.py --smoke --workdir /tmp/dirbench-smoke --out smoke.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from checks import Checks

TINYLLAMA = {"hidden": 2048, "intermediate": 5632, "layers": 22, "heads": 32, "kv_heads": 4, "vocab": 32000}
LLAMA2_7B = {"hidden": 4096, "intermediate": 11008, "layers": 32, "heads": 32, "kv_heads": 32, "vocab": 32000}
SHAPES = {"tinyllama-1.1b": TINYLLAMA, "llama2-7b": LLAMA2_7B}
SMOKE_SHAPE = {"hidden": 64, "intermediate": 176, "layers": 2, "heads": 4, "kv_heads": 2, "vocab": 512}


def llama_shapes(
    hidden: int, intermediate: int, layers: int, heads: int, kv_heads: int, vocab: int
) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of a Llama checkpoint (untied embeddings)."""
    kv = hidden // heads * kv_heads
    shapes = {"model.embed_tokens.weight": (vocab, hidden), "model.norm.weight": (hidden,), "lm_head.weight": (vocab, hidden)}
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes |= {
            p + "self_attn.q_proj.weight": (hidden, hidden),
            p + "self_attn.k_proj.weight": (kv, hidden),
            p + "self_attn.v_proj.weight": (kv, hidden),
            p + "self_attn.o_proj.weight": (hidden, hidden),
            p + "mlp.gate_proj.weight": (intermediate, hidden),
            p + "mlp.up_proj.weight": (intermediate, hidden),
            p + "mlp.down_proj.weight": (hidden, intermediate),
            p + "input_layernorm.weight": (hidden,),
            p + "post_attention_layernorm.weight": (hidden,),
        }
    return shapes


def write_checkpoint(folder: Path, shapes: dict[str, tuple[int, ...]], shard_bytes: int, dtype: torch.dtype) -> int:
    """Random weights of the given shapes as safetensors shards of at most `shard_bytes`, one tensor made at a time."""
    folder.mkdir(parents=True, exist_ok=True)
    shard, size, index, params = {}, 0, 0, 0
    gen = torch.Generator().manual_seed(0)
    for name, shape in shapes.items():
        t = (torch.randn(shape, generator=gen) * 0.02).to(dtype)
        params += t.numel()
        if shard and size + t.numel() * t.element_size() > shard_bytes:
            index += 1
            save_file(shard, str(folder / f"model-{index:05d}.safetensors"))
            shard, size = {}, 0
        shard[name] = t
        size += t.numel() * t.element_size()
    save_file(shard, str(folder / f"model-{index + 1:05d}.safetensors"))
    return params


def peak_rss() -> int:
    """High-water mark of this process's resident memory (VmHWM; unlike ru_maxrss it is not inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(model_dir: str, out_dir: str, shard_bytes: int, workers: int) -> None:
    from safety_landscape.directions import CheckpointReader, random_source, write_direction

    torch.set_num_threads(1)  # as the directions rule: parallel over tensors
    after_imports, start = peak_rss(), time.time()
    digest = write_direction(
        out_dir,
        CheckpointReader(model_dir),
        random_source(0, "layer"),
        ["norm"],
        torch.float32,
        shard_bytes,
        {"bench": True},
        workers=workers,
    )
    seconds = time.time() - start
    print(
        json.dumps({"seconds": seconds, "peak_rss_bytes": peak_rss(), "rss_after_imports_bytes": after_imports, "digest": digest})
    )


def generate_in_child(model_dir: Path, out_dir: Path, shard_bytes: int, workers: int) -> dict:
    """One direction written by a fresh process with `workers` threads: its time, peak memory and digest."""
    shutil.rmtree(out_dir, ignore_errors=True)
    command = [sys.executable, __file__, "--child", str(model_dir), str(out_dir), str(shard_bytes), str(workers)]
    run = subprocess.run(command, capture_output=True, text=True, check=True)
    return {"workers": workers, **json.loads(run.stdout.strip().splitlines()[-1])}


def check_direction(out_dir: Path, shapes: dict[str, tuple[int, ...]], checks: Checks) -> None:
    """The direction must hold every non-norm tensor of the checkpoint, with its shape, in float32."""
    from safety_landscape.directions import Direction

    expected = {name: shape for name, shape in shapes.items() if "norm" not in name}
    direction = Direction(out_dir)
    complete = sorted(direction.names) == sorted(expected)
    matching = sum(tuple(t.shape) == expected.get(name) and t.dtype == torch.float32 for name, t in direction if name in expected)
    checks.check(
        complete and matching == len(expected),
        f"direction: {len(direction.names)} tensors for the checkpoint's {len(expected)} non-norm tensors, "
        f"{matching} of them float32 with the checkpoint's shape",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/direction-memory-bench"))
    parser.add_argument("--out", type=Path, default=Path("bench-direction-memory.json"))
    parser.add_argument("--shard-mb", type=float, default=512, help="output shard size of the direction (MiB)")
    parser.add_argument("--smoke", action="store_true", help="tiny Llama shape and 64 KiB shards, seconds")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tinyllama-1.1b", help="model shape (not in --smoke)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1], help="threads of each run, one run per count")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child[0], args.child[1], int(args.child[2]), int(args.child[3]))
    if args.smoke:
        args.shard_mb, args.workers = 1 / 16, [1, 2]
    shapes = llama_shapes(**(SMOKE_SHAPE if args.smoke else SHAPES[args.shape]))
    shard_bytes = int(args.shard_mb * (1 << 20))
    shutil.rmtree(args.workdir, ignore_errors=True)
    model_dir, out_dir = args.workdir / "model", args.workdir / "d1"
    params = write_checkpoint(model_dir, shapes, shard_bytes if args.smoke else 1 << 30, torch.bfloat16)
    largest = max(torch.Size(s).numel() for s in shapes.values())
    runs = [generate_in_child(model_dir, out_dir, shard_bytes, workers) for workers in args.workers]
    measured = {key: value for key, value in runs[0].items() if key not in ("workers", "digest")}
    mib = 1 << 20
    result = {
        "parameters": params,
        "model_bytes_fp32": params * 4,
        "checkpoint_bytes_bf16": sum(f.stat().st_size for f in model_dir.glob("*.safetensors")),
        "direction_bytes_fp32": sum(f.stat().st_size for f in out_dir.glob("*.safetensors")),
        "direction_shards": len(list(out_dir.glob("*.safetensors"))),
        "largest_tensor_bytes_fp32": largest * 4,
        "output_shard_bytes": shard_bytes,
        **measured,
    }
    result["bound_largest_tensor_plus_shard_bytes"] = result["largest_tensor_bytes_fp32"] + result["output_shard_bytes"]
    result["peak_above_imports_bytes"] = result["peak_rss_bytes"] - result["rss_after_imports_bytes"]
    for key, value in result.items():
        print(f"{key:40s} {value / mib:10.3f} MiB" if "bytes" in key else f"{key:40s} {value}")
    result["runs"] = runs
    for run in runs:
        print(f"workers {run['workers']:3d}: {run['seconds']:8.2f} s, peak {run['peak_rss_bytes'] / mib:10.1f} MiB")
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    checks = Checks()
    check_direction(out_dir, shapes, checks)
    if len(runs) > 1:
        digests = {run["digest"] for run in runs}
        checks.check(len(digests) == 1, f"direction digest equal for workers {args.workers}: {len(digests)} distinct digest(s)")
    checks.exit_if_failed()


if __name__ == "__main__":
    main()
