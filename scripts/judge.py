"""Judge every response along one direction."""

from safety_landscape.io import log_to_file, read_jsonl, write_jsonl
from safety_landscape.judges import judge_records

log_to_file(snakemake.log[0])
for responses, out in zip(snakemake.input, snakemake.output, strict=True):
    write_jsonl(out, judge_records(read_jsonl(responses), snakemake.params.judge))
