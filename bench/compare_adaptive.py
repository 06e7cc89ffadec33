"""An adaptive run beside full-grid runs of the same landscape: VISAGE (headline judge, paper definition),
the points each measured and generated, and the generation time, as a Markdown table.

Points generated and generation seconds are read from the generation logs ("N responses, T tokens in
S s ..., weight update U s" per generated point; points taken from the response cache cost nothing).
A full grid measured in several runs (a finer grid reusing a coarser one's points) is given as all of
them; its VISAGE is the last run's.

    python3 bench/compare_adaptive.py --adaptive results/adaptive-1d-fine --full results/full-1d results/full-1d-fine
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd

GENERATED = re.compile(r"\d+ responses, \d+ tokens in ([0-9.]+) s .*weight update ([0-9.]+) s")


def generation(logs: list[Path]) -> tuple[int, float]:
    """Points generated and their seconds (decoding and weight update) over generation logs."""
    found = [m for log in logs for m in GENERATED.finditer(log.read_text())]
    return len(found), sum(float(m.group(1)) + float(m.group(2)) for m in found)


def headline_visage(run: Path) -> pd.DataFrame:
    """The headline judge's rows of a run's VISAGE table, by landscape."""
    table = pd.read_csv(run / "tables" / "visage.csv")
    return table[table["judge"] == table["judge"].iloc[0]].set_index("landscape")


def compare(adaptive: Path, full: list[Path]) -> str:
    ours, theirs = headline_visage(adaptive), headline_visage(full[-1])
    generated, seconds = generation(sorted((adaptive / "logs" / "adaptive").glob("round*/generate.log")))
    full_generated, full_seconds = generation(
        [log for run in full for log in sorted((run / "logs" / "generate").glob("*/job*.log"))]
    )
    rows = [
        "| landscape | VISAGE full grid | VISAGE adaptive | difference | points measured (adaptive / full; mean: all) |",
        "|---|---|---|---|---|",
    ]
    names = [n for n in ours.index if n != "mean"]
    sampled = {n: int(ours.loc[n, "sampled_points"]) for n in names} | {"mean": int(ours.loc[names, "sampled_points"].sum())}
    grid = {n: int(ours.loc[n, "grid_points"]) for n in names} | {"mean": int(ours.loc[names, "grid_points"].sum())}
    for name in names + ["mean"]:
        a, f = ours.loc[name, "visage_paper"], theirs.loc[name, "visage_paper"]
        rows.append(f"| {name} | {f:.2f} | {a:.2f} | {a - f:+.2f} | {sampled[name]} / {grid[name]} |")
    rows.append("")
    rows.append(
        f"Generated: adaptive {generated} points in {seconds:.0f} s; full grid {full_generated} points in {full_seconds:.0f} s."
    )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adaptive", type=Path, required=True, help="results/<run> of the adaptive run")
    parser.add_argument("--full", type=Path, nargs="+", required=True, help="results/<run> of the full-grid run(s)")
    args = parser.parse_args()
    print(compare(args.adaptive, args.full))


if __name__ == "__main__":
    main()
