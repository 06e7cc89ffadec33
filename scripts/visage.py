"""ASR per grid point and VISAGE per landscape (both definitions), with a run summary."""

from safety_landscape.io import atomic_path, log_to_file, write_json
from safety_landscape.metrics import landscape_tables, load_judgments

log_to_file(snakemake.log[0])
p = snakemake.params
judgments = load_judgments(snakemake.input, p.landscapes, p.coords)
asr, table, summary = landscape_tables(judgments, p.visage["headline"], p.visage["basin_threshold"])
for frame, path in ((asr, snakemake.output.asr), (table, snakemake.output.visage)):
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
write_json(snakemake.output.summary, summary | {"run": p.run, "judge": p.judge, "kind": p.kind})
