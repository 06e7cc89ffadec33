"""Safety and capability along the landscape's axes in one figure (PNG and PDF)."""

import pandas as pd

from safety_landscape.figures import plot_capability, save_figure_set
from safety_landscape.io import log_to_file

log_to_file(snakemake.log[0])
p = snakemake.params
fig = plot_capability(pd.read_csv(snakemake.input[0]), p.style, f"{p.run}: safety and capability (ASR judge {p.judge})")
save_figure_set(fig, snakemake.output, p.style["dpi"])
