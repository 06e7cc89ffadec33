"""Peak memory of streaming direction generation for a >= 1B-parameter model.

Writes a TinyLlama-1.1B-shaped checkpoint with random weights as safetensors shards (tensor by
tensor, never the whole model), then generates one random direction from it in a child process
and reports that process's peak resident memory against the model size, the largest tensor and
the output shard size.

    python bench/bench_direction_memory.py --workdir /tmp/dirbench --out bench-direction-memory.json
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

# TinyLlama-1.1B: hidden 2048, intermediate 5632, 22 layers, 32 heads, 4 key/value heads, vocab 32000.
HIDDEN, INTER, LAYERS, HEADS, KV_HEADS, VOCAB = 2048, 5632, 22, 32, 4, 32000


def tinyllama_shapes() -> dict[str, tuple[int, ...]]:
    kv = HIDDEN // HEADS * KV_HEADS
    shapes = {"model.embed_tokens.weight": (VOCAB, HIDDEN), "model.norm.weight": (HIDDEN,), "lm_head.weight": (VOCAB, HIDDEN)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        shapes |= {
            p + "self_attn.q_proj.weight": (HIDDEN, HIDDEN),
            p + "self_attn.k_proj.weight": (kv, HIDDEN),
            p + "self_attn.v_proj.weight": (kv, HIDDEN),
            p + "self_attn.o_proj.weight": (HIDDEN, HIDDEN),
            p + "mlp.gate_proj.weight": (INTER, HIDDEN),
            p + "mlp.up_proj.weight": (INTER, HIDDEN),
            p + "mlp.down_proj.weight": (HIDDEN, INTER),
            p + "input_layernorm.weight": (HIDDEN,),
            p + "post_attention_layernorm.weight": (HIDDEN,),
        }
    return shapes


def write_checkpoint(folder: Path, shard_bytes: int, dtype: torch.dtype) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    shard, size, index, params = {}, 0, 0, 0
    gen = torch.Generator().manual_seed(0)
    for name, shape in tinyllama_shapes().items():
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


def child(model_dir: str, out_dir: str, shard_mb: int) -> None:
    from safety_landscape.directions import CheckpointReader, random_source, write_direction

    after_imports, start = peak_rss(), time.time()
    write_direction(
        out_dir, CheckpointReader(model_dir), random_source(0, "layer"), ["norm"], torch.float32, shard_mb << 20, {"bench": True}
    )
    print(json.dumps({"seconds": time.time() - start, "peak_rss_bytes": peak_rss(), "rss_after_imports_bytes": after_imports}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/direction-memory-bench"))
    parser.add_argument("--out", type=Path, default=Path("bench-direction-memory.json"))
    parser.add_argument("--shard-mb", type=int, default=512, help="output shard size of the direction")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child[0], args.child[1], int(args.child[2]))
    shutil.rmtree(args.workdir, ignore_errors=True)
    model_dir, out_dir = args.workdir / "model", args.workdir / "d1"
    params = write_checkpoint(model_dir, 1 << 30, torch.bfloat16)
    shapes = tinyllama_shapes()
    largest = max(torch.Size(s).numel() for s in shapes.values())
    run = subprocess.run(
        [sys.executable, __file__, "--child", str(model_dir), str(out_dir), str(args.shard_mb)],
        capture_output=True,
        text=True,
        check=True,
    )
    measured = json.loads(run.stdout.strip().splitlines()[-1])
    mib = 1 << 20
    result = {
        "parameters": params,
        "model_bytes_fp32": params * 4,
        "checkpoint_bytes_bf16": sum(f.stat().st_size for f in model_dir.glob("*.safetensors")),
        "direction_bytes_fp32": sum(f.stat().st_size for f in out_dir.glob("*.safetensors")),
        "largest_tensor_bytes_fp32": largest * 4,
        "output_shard_bytes": args.shard_mb * mib,
        **measured,
    }
    result["bound_largest_tensor_plus_shard_bytes"] = result["largest_tensor_bytes_fp32"] + result["output_shard_bytes"]
    result["peak_above_imports_bytes"] = result["peak_rss_bytes"] - result["rss_after_imports_bytes"]
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for key, value in result.items():
        print(f"{key:40s} {value / mib:10.1f} MiB" if key.endswith("bytes") else f"{key:40s} {value}")


if __name__ == "__main__":
    main()
