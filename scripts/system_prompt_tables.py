"""System prompt variants: ASR and VISAGE of each variant's landscapes, and the paper's Table 2."""

import pandas as pd

from safety_landscape.io import log_to_file, write_table
from safety_landscape.tables import landscape_tables, load_judgments, system_prompt_table

log_to_file(snakemake.log[0])
p, out = snakemake.params, snakemake.output
cfg = p.visage
per_variant = len(p.judges) * len(p.main) * len(p.coords)
asr_frames, visage_tables = [], {}
for k, (variant, names) in enumerate(p.variants.items()):
    files = snakemake.input[k * per_variant : (k + 1) * per_variant]
    judgments = load_judgments(files, p.judges, names, p.coords).assign(landscape=lambda f: f["landscape"].str.split("@").str[0])
    asr, visage, _, _ = landscape_tables(judgments, cfg["headline"], cfg["basin_threshold"], cfg["bootstrap"], cfg["confidence"], cfg["seed"])
    asr_frames.append(asr.assign(variant=variant))
    visage_tables[variant] = visage
table2 = system_prompt_table(visage_tables, p.texts, cfg["headline"])
visage_long = pd.concat([v.assign(variant=name) for name, v in visage_tables.items()], ignore_index=True)
for frame, path in ((pd.concat(asr_frames, ignore_index=True), out.asr), (visage_long, out.visage), (table2, out.table2)):
    write_table(frame, path)
