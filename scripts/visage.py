"""ASR per grid point and judge, VISAGE per landscape and judge (both definitions, bootstrap CIs),
judge agreement, and a run summary."""

from safety_landscape.adaptive import AdaptiveGrid
from safety_landscape.io import log_to_file, write_json, write_table
from safety_landscape.tables import landscape_tables, load_judgments, visage_summary_table

log_to_file(snakemake.log[0])
p = snakemake.params
cfg = p.visage
judgments = load_judgments(snakemake.input)
asr, table, agreement, summary = landscape_tables(
    judgments,
    cfg["headline"],
    cfg["basin_threshold"],
    cfg["bootstrap"],
    cfg["confidence"],
    cfg["seed"],
    AdaptiveGrid.from_settings(p.adaptive) if p.adaptive else None,
)
out = snakemake.output
for frame, csv, parquet in (
    (asr, out.asr, out.asr_parquet),
    (table, out.visage, out.visage_parquet),
    (agreement, out.agreement, out.agreement_parquet),
):
    write_table(frame, csv, parquet)
write_table(visage_summary_table(summary), out.headline)
write_json(out.summary, summary | {"run": p.run, "kind": p.kind})
