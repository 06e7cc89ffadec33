"""ASR on the harmful prompts and refusal rate on the safe prompts at every point of the main landscapes."""

from safety_landscape.io import log_to_file, write_table
from safety_landscape.tables import load_judgments, over_refusal_table

log_to_file(snakemake.log[0])
cfg = snakemake.params.bootstrap
harmful, safe = load_judgments(snakemake.input.harmful), load_judgments(snakemake.input.safe)
table = over_refusal_table(harmful, safe, cfg["bootstrap"], cfg["confidence"], cfg["seed"])
write_table(table, snakemake.output[0])
