"""Compare the runs of a study: VISAGE, ASR at theta and basin per model and judge; every model's 1D landscape in one figure."""

import pandas as pd

from safety_landscape.figures import plot_study_1d, save_figure_set
from safety_landscape.io import log_to_file, write_table
from safety_landscape.study import compare_asr, compare_summary_table, compare_table

log_to_file(snakemake.log[0])
p, out = snakemake.params, snakemake.output
names = [run["run"] for run in p.runs]
table = compare_table(dict(zip(names, map(pd.read_csv, snakemake.input.visage))), p.runs, p.definition)
asr = compare_asr(dict(zip(names, map(pd.read_csv, snakemake.input.asr))), p.runs)
write_table(table, out.table, out.parquet)
write_table(asr, out.asr)
write_table(compare_summary_table(table), out.headline)
save_figure_set(plot_study_1d(asr, table, p.judge, p.style, p.title, p.threshold), (out.png, out.pdf), p.style["dpi"])
