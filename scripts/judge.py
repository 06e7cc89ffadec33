"""Judge every response of one landscape (or of one checkpoint job) with one judge (cached per response)."""

import logging

from safety_landscape.gpus import claim_gpus, visible_gpus
from safety_landscape.io import log_to_file, read_json, read_jsonl, write_jsonl
from safety_landscape.judges import judge_records, open_judge

log_to_file(snakemake.log[0])
p = snakemake.params
spec = p.spec
gpus = visible_gpus() if p.gpu else []
if gpus:
    gpu_locks = claim_gpus(1, gpus, p.gpu_locks)  # held until the job ends
records = [r for path in snakemake.input.responses for r in read_jsonl(path)]
judge_spec = spec
if p.judge_model:  # a hub model: its download's folder; the verdicts' cache names the commit judged with
    model = read_json(p.judge_model)
    judge_spec, spec = spec | {"model": model["path"]}, spec | {"revision": model["revision"]}
judgments, asked = judge_records(open_judge(judge_spec), spec, records, p.cache)
logging.getLogger("judge").info(
    "%s: %d responses, %d judged now, %d from the cache", spec["id"], len(records), asked, len(records) - asked
)
write_jsonl(snakemake.output[0], judgments)
