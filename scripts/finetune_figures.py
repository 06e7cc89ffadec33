"""Finetuning figures: ASR by epoch, ASR along aligned -> finetuned, and every epoch's checkpoint
projected on the plane of two finetunes (trajectories on the contour, as the paper's Fig. 1B)."""

import pandas as pd

from safety_landscape.figures import plot_finetune_epochs, plot_finetune_lines, plot_landscape_2d_contour, save_figure_set
from safety_landscape.io import log_to_file, read_json

log_to_file(snakemake.log[0])
p = snakemake.params
summary = read_json(snakemake.input.summary)
landscape = pd.read_csv(snakemake.input.landscape)
lines = landscape[landscape["b"].isna()] if "b" in landscape else landscape
figures = [
    plot_finetune_epochs(pd.read_csv(snakemake.input.asr), p.judge, p.style),
    plot_finetune_lines(lines, p.judge, p.style, f"{p.run}: from the model before finetuning to each finetune (judge {p.judge})"),
]
if snakemake.input.projections:
    plane = landscape[landscape["b"].notna() & (landscape["judge"] == p.judge)]
    first, second = (summary["datasets"][axis] for axis in plane["landscape"].iloc[0].split("-"))
    trajectories = {}
    for record in map(read_json, snakemake.input.projections):
        dataset, epoch = p.saved[record["checkpoint"]]
        trajectories.setdefault(dataset, [("θ", 0.0, 0.0)]).append((f"epoch {epoch}", *record["coordinates"]))
    plane_summary = summary["plane"] | {"run": p.run, "kind": f"finetune plane ({first}, {second})"}
    figures.append(
        plot_landscape_2d_contour(
            plane,
            plane_summary,
            p.style,
            [first, second],
            [(first, 1.0, 0.0), (second, 0.0, 1.0)],
            trajectories,
            [f"a  (toward {first})", f"b  (toward {second})"],
        )
    )
for i, fig in enumerate(figures):
    save_figure_set(fig, snakemake.output[2 * i : 2 * i + 2], p.style["dpi"])
