"""ASR per grid point and judge, VISAGE per landscape and judge (both definitions, bootstrap CIs),
judge agreement, and a run summary."""

from safety_landscape.io import atomic_path, log_to_file, write_json
from safety_landscape.tables import landscape_tables, load_judgments, visage_summary_table

log_to_file(snakemake.log[0])
p = snakemake.params
cfg = p.visage
judgments = load_judgments(snakemake.input, p.judges, p.landscapes, p.coords)
asr, table, agreement, summary = landscape_tables(
    judgments, cfg["headline"], cfg["basin_threshold"], cfg["bootstrap"], cfg["confidence"], cfg["seed"]
)
out = snakemake.output
for frame, csv, parquet in ((asr, out.asr, out.asr_parquet), (table, out.visage, out.visage_parquet), (agreement, out.agreement, out.agreement_parquet)):
    with atomic_path(csv) as tmp:
        frame.to_csv(tmp, index=False)
    with atomic_path(parquet) as tmp:
        frame.to_parquet(tmp, index=False)
with atomic_path(out.headline) as tmp:
    visage_summary_table(summary).to_csv(tmp, index=False)
write_json(out.summary, summary | {"run": p.run, "kind": p.kind})
