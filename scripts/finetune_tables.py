"""Finetuning results: ASR of every checkpoint, the paper's Table 1, and the ASR along the lines
aligned -> finetuned and over their plane."""

import pandas as pd

from safety_landscape.io import log_to_file, read_jsonl, write_json, write_table
from safety_landscape.metrics import heldout_indices
from safety_landscape.prompts import select_prompts
from safety_landscape.tables import finetune_tables, landscape_tables, load_checkpoint_judgments, load_judgments

log_to_file(snakemake.log[0])
p, out = snakemake.params, snakemake.output
cfg = p.visage
judgments = load_checkpoint_judgments(snakemake.input.checkpoints)
training_prompts = {pair["prompt"] for path in snakemake.input.pairs for pair in read_jsonl(path)}
heldout = {
    name: heldout_indices(select_prompts(s["file"], s["column"], s["start"], s["count"]), training_prompts)
    for name, s in p.eval_sets.items()
}
long, table1 = finetune_tables(
    judgments,
    {name: tuple(v) for name, v in p.epochs.items()},
    p.model,
    heldout,
    cfg["bootstrap"],
    cfg["confidence"],
    cfg["seed"],
)
for frame, csv, parquet in ((long, out.asr, out.asr_parquet), (table1, out.table1, out.table1_parquet)):
    write_table(frame, csv, parquet)
summary = {"datasets": p.datasets, "table1": table1.to_dict("records")}
frames = []
for key, files in (("lines", snakemake.input.lines), ("plane", snakemake.input.plane)):
    if not files:
        continue
    asr, visage, _, landscape_summary = landscape_tables(
        load_judgments(files), cfg["headline"], cfg["basin_threshold"], cfg["bootstrap"], cfg["confidence"], cfg["seed"]
    )
    frames.append(asr.assign(dataset=asr["landscape"].map(lambda n: " x ".join(p.datasets[a] for a in n.split("-")))))
    summary[key] = landscape_summary | {"visage_table": visage.to_dict("records")}
write_table(pd.concat(frames, ignore_index=True), out.landscape)
write_json(out.summary, summary)
