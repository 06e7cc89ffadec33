"""Judge every response of one landscape with one judge (cached per response)."""

import logging

from safety_landscape.io import log_to_file, read_jsonl, write_jsonl
from safety_landscape.judges import judge_points, open_judge

log_to_file(snakemake.log[0])
spec = snakemake.params.spec
points = [read_jsonl(path) for path in snakemake.input]
judgments, asked = judge_points(open_judge(spec), spec, points, snakemake.params.cache)
logging.getLogger("judge").info("%s: %d responses, %d judged now, %d from the cache", spec["id"], sum(map(len, points)), asked, sum(map(len, points)) - asked)
for records, out in zip(judgments, snakemake.output, strict=True):
    write_jsonl(out, records)
