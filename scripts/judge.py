"""Judge every response of one landscape (or of one checkpoint job) with one judge (cached per response)."""

import logging

from safety_landscape.io import log_to_file, read_jsonl, write_jsonl
from safety_landscape.judges import judge_records, open_judge

log_to_file(snakemake.log[0])
spec = snakemake.params.spec
records = [r for path in snakemake.input for r in read_jsonl(path)]
judgments, asked = judge_records(open_judge(spec), spec, records, snakemake.params.cache)
logging.getLogger("judge").info(
    "%s: %d responses, %d judged now, %d from the cache", spec["id"], len(records), asked, len(records) - asked
)
write_jsonl(snakemake.output[0], judgments)
