"""Replay adaptive rounds on a full-grid run's ASR: the points an adaptive run with the given settings
would measure and its VISAGE, per landscape, without generating anything.

The rounds' choices depend only on the headline judge's ASR at the points sampled so far, and a point's
responses do not depend on the run that generates it (same weights, prompts, decoding and code: the same
response cache entry), so an adaptive run measures exactly the points replayed here. The replay reads
the full-grid run's tables/asr.csv (headline judge: the file's first).

    python3 bench/replay_adaptive.py results/full-1d-fine --initial-stride 4 --min-stride 1 --tolerance 1 2 4
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from safety_landscape.adaptive import AdaptiveGrid, first_plan, next_plan
from safety_landscape.metrics import visage

HEADER = "| initial_stride | tolerance | landscape | points measured | rounds | VISAGE adaptive | VISAGE full grid | difference |"


def replay(points: pd.DataFrame, grid: AdaptiveGrid, tolerance: float) -> dict:
    """The rounds of one landscape on its full-grid ASR (`points`: columns a[, b], asr)."""
    axes = [c for c in ("a", "b") if c in points]
    truth = {grid.index_of(coords): asr for *coords, asr in points[[*axes, "asr"]].itertuples(index=False, name=None)}
    plan = first_plan(grid)
    while not plan["converged"]:
        plan = next_plan(grid, plan, {tuple(c): truth[grid.index_of(c)] for c in plan["sampled"]}, tolerance)
    return {
        "sampled": len(plan["sampled"]),
        "points": plan["sampled"],
        "rounds": plan["round"],
        "estimate": plan["estimates"][-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="results/<run> of a full-grid run")
    parser.add_argument("--initial-stride", type=int, nargs="+", default=[4])
    parser.add_argument("--min-stride", type=int, default=1)
    parser.add_argument("--tolerance", type=float, nargs="+", default=[1.0])
    args = parser.parse_args()
    table = pd.read_csv(args.run / "tables" / "asr.csv")
    table = table[table["judge"] == table["judge"].iloc[0]]
    axes = [c for c in ("a", "b") if c in table]
    print(HEADER)
    print("|---|---|---|---|---|---|---|---|")
    for stride in args.initial_stride:
        for tolerance in args.tolerance:
            for name, points in table.groupby("landscape", sort=True):
                points = points.sort_values(axes)
                grid = AdaptiveGrid(tuple(tuple(sorted(points[c].unique())) for c in axes), stride, args.min_stride)
                full = visage(points["asr"].to_numpy())
                r = replay(points, grid, tolerance)
                print(
                    f"| {stride} | {tolerance:g} | {name} | {r['sampled']} / {len(points)} | {r['rounds']} "
                    f"| {r['estimate']:.2f} | {full:.2f} | {r['estimate'] - full:+.2f} |"
                )


if __name__ == "__main__":
    main()
