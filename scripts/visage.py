"""ASR per grid point and judge, VISAGE per landscape and judge (both definitions, bootstrap CIs; on the mean
score for scoring judges), judge agreement, the Llama Guard judges' category counts, and a run summary."""

from safety_landscape.adaptive import AdaptiveGrid
from safety_landscape.io import log_to_file, write_json, write_table
from safety_landscape.judge_formats import LLAMA_GUARD_CATEGORY_NAMES
from safety_landscape.tables import guard_category_table, landscape_tables, load_judgments, visage_summary_table, with_scores

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
asr, table = with_scores(judgments, asr, table)
if "visage_score" in table.columns:
    for row in table[(table["landscape"] == "mean") & table["visage_score"].notna()].to_dict("records"):
        summary["judges"][row["judge"]]["visage_score"] = row["visage_score"]
out = snakemake.output
for frame, csv, parquet in (
    (asr, out.asr, out.asr_parquet),
    (table, out.visage, out.visage_parquet),
    (agreement, out.agreement, out.agreement_parquet),
):
    write_table(frame, csv, parquet)
write_table(visage_summary_table(summary), out.headline)
if p.guard:
    names = {judge: LLAMA_GUARD_CATEGORY_NAMES.get(kind) for judge, kind in p.guard.items()}
    write_table(guard_category_table(judgments, names), out.guard_categories)
write_json(out.summary, summary | {"run": p.run, "kind": p.kind})
