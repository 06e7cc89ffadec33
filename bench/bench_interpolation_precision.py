"""How much of an interpolation step survives rounding to the generation dtype.

Along an interpolation direction d = theta' - theta (e.g. aligned -> finetuned), a point's weights are
W = W0 + a * d. This builds W exactly as the workflow does (d from `directions.interpolation_source`,
stored in the directions' dtype, then `points.combine` into the generation dtype) and reports, per
(generation dtype, direction dtype, a), the share of the weights that d moves (d != 0) for which W
still equals W0: those weights did not move at all, so the point measures theta there, not the line.

    PYTHONPATH=src python3 bench/bench_interpolation_precision.py --theta <folder> --endpoint <folder> --out precision.json
    PYTHONPATH=src python3 bench/bench_interpolation_precision.py --smoke     # two tiny random checkpoints, seconds on a CPU
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

from safety_landscape.directions import CheckpointReader, interpolation_source, is_excluded
from safety_landscape.points import combine

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# (generation dtype = dtype of W0 and of the point, dtype the direction is stored in)
SETTINGS = [("bfloat16", "bfloat16"), ("bfloat16", "float32"), ("float16", "float32"), ("float32", "float32")]


def unchanged_counts(theta: CheckpointReader, endpoint: CheckpointReader, steps: list[float], exclude: list[str]) -> dict:
    """Per setting and step: weights moved by d, and those of them whose rounded W equals W0."""
    diff = interpolation_source(endpoint)
    counts = {(gen, dirs, a): [0, 0] for gen, dirs in SETTINGS for a in steps}
    for name, weight in theta:
        if not weight.is_floating_point() or is_excluded(name, exclude):
            continue
        d = diff(name, weight)
        moved = d != 0
        for gen, dirs in SETTINGS:
            w0 = weight.to(DTYPES[gen])
            stored = d.to(DTYPES[dirs])
            for a in steps:
                same = combine(w0, [(stored, a)], "cpu") == w0
                counts[(gen, dirs, a)][0] += int(moved.sum())
                counts[(gen, dirs, a)][1] += int((same & moved).sum())
    return counts


def relative_step(theta: CheckpointReader, endpoint: CheckpointReader, exclude: list[str]) -> float:
    """Median over tensors of |d| / |W| (Frobenius norms): how far the endpoint is, relatively."""
    diff = interpolation_source(endpoint)
    ratios = [
        float(diff(n, w).norm() / w.float().norm()) for n, w in theta if w.is_floating_point() and not is_excluded(n, exclude)
    ]
    return float(torch.tensor(ratios).median())


def tiny_checkpoints(folder: Path) -> tuple[Path, Path]:
    """Two random checkpoints, the second a finetune-sized step (1e-4 relative) away from the first."""
    gen = torch.Generator().manual_seed(0)
    theta = {f"layers.{i}.weight": torch.randn(64, 64, generator=gen) * 0.02 for i in range(3)} | {"norm.weight": torch.ones(64)}
    endpoint = {n: w + 1e-4 * w.abs().mean() * torch.randn(w.shape, generator=gen) for n, w in theta.items()}
    for name, tensors in (("theta", theta), ("endpoint", endpoint)):
        (folder / name).mkdir()
        save_file(tensors, str(folder / name / "model.safetensors"))
    return folder / "theta", folder / "endpoint"


def table(counts: dict) -> list[dict]:
    return [
        {
            "generation_dtype": gen,
            "direction_dtype": dirs,
            "a": a,
            "moved": moved,
            "unchanged": same,
            "unchanged_pct": round(100.0 * same / moved, 2) if moved else float("nan"),
        }
        for (gen, dirs, a), (moved, same) in counts.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--theta", help="model folder of theta (a = 0)")
    parser.add_argument("--endpoint", help="model folder of theta' (a = 1)")
    parser.add_argument("--a", type=float, nargs="+", default=[0.05, 0.1, 0.5, 1.0])
    parser.add_argument("--exclude", nargs="*", default=["norm"], help="tensors left out, as landscape.exclude_patterns")
    parser.add_argument("--smoke", action="store_true", help="run on two tiny random checkpoints")
    parser.add_argument("--out", help="write the results as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        theta, endpoint = tiny_checkpoints(Path(tmp)) if args.smoke else (args.theta, args.endpoint)
        if theta is None or endpoint is None:
            parser.error("give --theta and --endpoint, or --smoke")
        readers = CheckpointReader(theta), CheckpointReader(endpoint)
        rows = table(unchanged_counts(*readers, args.a, args.exclude))
        result = {
            "theta": str(theta),
            "endpoint": str(endpoint),
            "median_relative_step": relative_step(*readers, args.exclude),
            "rows": rows,
        }
    print(f"median |d| / |W| per tensor: {result['median_relative_step']:.3g}")
    print("| generation dtype | direction dtype | " + " | ".join(f"a = {a:g}" for a in args.a) + " |")
    print("|---|---|" + "---|" * len(args.a))
    for gen, dirs in SETTINGS:
        cells = [f"{r['unchanged_pct']:.1f} %" for r in rows if (r["generation_dtype"], r["direction_dtype"]) == (gen, dirs)]
        print(f"| {gen} | {dirs} | " + " | ".join(cells) + " |")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
