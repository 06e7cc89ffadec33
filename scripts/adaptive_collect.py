"""Gather an adaptive landscape: its responses from all its rounds (which hold every main landscape's) in one
file, and its last plan (the rounds' points and VISAGE estimates) as its record of rounds."""

from safety_landscape.io import log_to_file, read_json, read_jsonl, write_json, write_jsonl

log_to_file(snakemake.log[0])
landscape = snakemake.params.landscape
write_jsonl(
    snakemake.output.responses, [r for path in snakemake.input.responses for r in read_jsonl(path) if r["landscape"] == landscape]
)
write_json(snakemake.output.rounds, read_json(snakemake.input.plan))
