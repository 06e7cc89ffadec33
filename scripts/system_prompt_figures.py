"""One figure with the landscape of every system prompt variant (PNG and PDF)."""

import pandas as pd

from safety_landscape.figures import plot_system_prompts, save_figure_set
from safety_landscape.io import log_to_file

log_to_file(snakemake.log[0])
p = snakemake.params
asr, table2 = pd.read_csv(snakemake.input.asr), pd.read_csv(snakemake.input.table2)
fig = plot_system_prompts(asr, table2, p.judge, p.style, f"{p.run}: safety landscape per system prompt (judge {p.judge})")
save_figure_set(fig, snakemake.output, p.style["dpi"])
