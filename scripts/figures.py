"""Draw the 1D safety landscape as PNG and PDF."""

import pandas as pd

from safety_landscape.figures import plot_landscape_1d, save_figure
from safety_landscape.io import log_to_file, read_json

log_to_file(snakemake.log[0])
style = snakemake.params.style
fig = plot_landscape_1d(pd.read_csv(snakemake.input.asr), read_json(snakemake.input.summary), style)
for path in (snakemake.output.png, snakemake.output.pdf):
    save_figure(fig, path, style["dpi"])
