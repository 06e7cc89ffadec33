"""Compare the runs of a study: VISAGE, ASR at theta and basin per model and judge; every model's 1D landscape in one figure."""

import pandas as pd

from safety_landscape.figures import plot_study_1d, save_figure
from safety_landscape.io import atomic_path, log_to_file
from safety_landscape.study import compare_asr, compare_summary_table, compare_table

log_to_file(snakemake.log[0])
p, out = snakemake.params, snakemake.output
names = [run["run"] for run in p.runs]
table = compare_table(dict(zip(names, map(pd.read_csv, snakemake.input.visage))), p.runs, p.definition)
asr = compare_asr(dict(zip(names, map(pd.read_csv, snakemake.input.asr))), p.runs)
for frame, path in ((table, out.table), (asr, out.asr), (compare_summary_table(table), out.headline)):
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
with atomic_path(out.parquet) as tmp:
    table.to_parquet(tmp, index=False)
fig = plot_study_1d(asr, table, p.judge, p.style, p.title, p.threshold)
for path in (out.png, out.pdf):
    save_figure(fig, path, p.style["dpi"])
