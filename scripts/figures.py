"""Draw the landscape figures (PNG and PDF) with interpolation endpoints and projected checkpoints marked."""

import pandas as pd

from safety_landscape.adaptive import AdaptiveGrid, interpolation_on_grid
from safety_landscape.directions import Direction
from safety_landscape.figures import plot_landscape_1d, plot_landscape_2d_contour, plot_landscape_3d, save_figure_set
from safety_landscape.io import log_to_file, read_json

log_to_file(snakemake.log[0])
p = snakemake.params
asr, summary = pd.read_csv(snakemake.input.asr), read_json(snakemake.input.summary)
# 2D figures show the headline judge on the first plane (VISAGE in the title is the mean over every plane)
headline = asr[(asr["judge"] == summary["judge"]) & (asr["landscape"] == p.landscape)]
directions = [Direction(d).metadata for d in snakemake.input.directions]
# Interpolation endpoints sit at coefficient 1 on their axis (shifted along the first axis by Gram-Schmidt).
endpoints = [
    (m["endpoint"], m.get("gram_schmidt_coefficient", 0.0), i) for i, m in enumerate(directions) if m["kind"] == "interpolation"
]
projections = [read_json(f) for f in snakemake.input.projections]
if p.two_d:
    ends = [(name, *((1.0, 0.0) if i == 0 else (shift, 1.0))) for name, shift, i in endpoints]
    trajectory = [(r["checkpoint"], *r["coordinates"]) for r in projections]
    sampled = []
    if p.adaptive:  # the measured points as dots, the rest of the grid interpolated as VISAGE is computed
        sampled = list(zip(headline["a"], headline["b"]))
        full, weights = interpolation_on_grid(AdaptiveGrid.from_settings(p.adaptive), headline)
        headline = full.assign(asr=weights @ headline["asr"].to_numpy())
    trajectories = {"checkpoints": trajectory} if trajectory else None
    figures = [
        plot_landscape_2d_contour(headline, summary, p.style, p.axes, ends, trajectories, sampled=sampled),
        plot_landscape_3d(headline, summary, p.style, p.axes),
    ]
else:
    marks = [(name, 1.0) for name, _, _ in endpoints] + [(r["checkpoint"], r["coordinates"][0]) for r in projections]
    figures = [plot_landscape_1d(asr, summary, p.style, marks)]
for i, fig in enumerate(figures):
    save_figure_set(fig, snakemake.output[2 * i : 2 * i + 2], p.style["dpi"])
