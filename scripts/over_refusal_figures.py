"""One figure of safety against over-refusal along each direction (PNG and PDF)."""

import pandas as pd

from safety_landscape.figures import plot_over_refusal, save_figure_set
from safety_landscape.io import log_to_file

log_to_file(snakemake.log[0])
p = snakemake.params
safe = p.safe_prompts["set"] or p.safe_prompts["file"]
title = f"{p.run}: safety and over-refusal at the same points\n"
title += f"harmful prompts answered, safe prompts ({safe}) refused; judge {p.judge}"
save_figure_set(plot_over_refusal(pd.read_csv(snakemake.input[0]), p.style, title), snakemake.output, p.style["dpi"])
