"""System prompt variants: ASR and VISAGE of each variant's landscapes, and the paper's Table 2."""

import pandas as pd

from safety_landscape.io import log_to_file, write_table
from safety_landscape.tables import landscape_tables, load_judgments, system_prompt_table

log_to_file(snakemake.log[0])
p, out = snakemake.params, snakemake.output
cfg = p.visage
judgments = load_judgments(snakemake.input)
asr_frames, visage_tables = [], {}
for variant, names in p.variants.items():
    of_variant = judgments[judgments["landscape"].isin(names)].assign(landscape=lambda f: f["landscape"].str.split("@").str[0])
    asr, visage, _, _ = landscape_tables(
        of_variant, cfg["headline"], cfg["basin_threshold"], cfg["bootstrap"], cfg["confidence"], cfg["seed"]
    )
    asr_frames.append(asr.assign(variant=variant))
    visage_tables[variant] = visage
table2 = system_prompt_table(visage_tables, p.texts, cfg["headline"])
visage_long = pd.concat([v.assign(variant=name) for name, v in visage_tables.items()], ignore_index=True)
for frame, path in ((pd.concat(asr_frames, ignore_index=True), out.asr), (visage_long, out.visage), (table2, out.table2)):
    write_table(frame, path)
