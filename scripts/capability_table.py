"""Capability scores of every point beside the headline judge's ASR."""

import pandas as pd

from safety_landscape.io import log_to_file, read_jsonl, write_table
from safety_landscape.tables import capability_table

log_to_file(snakemake.log[0])
table = capability_table(
    [r for f in snakemake.input.scores for r in read_jsonl(f)], pd.read_csv(snakemake.input.asr), snakemake.params.judge
)
write_table(table, snakemake.output[0])
