"""Generate responses at every grid point of one job, loading the model once."""

import torch

from safety_landscape.generate import claim_generation_gpus, job_records, open_generation
from safety_landscape.io import log_to_file, read_json, write_jsonl
from safety_landscape.prompts import prompts_digest, source_prompts

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
p = snakemake.params
gpu_locks = claim_generation_gpus(p.generation, p.gpu_locks)  # held until the job ends
model_info = read_json(snakemake.input.model)
engine, settings = open_generation(p.generation, model_info["path"], p.trust_remote_code)
prompts, fields = source_prompts(snakemake.input.prompts, p.prompts)  # with contexts, the fields records carry
records = job_records(
    engine, model_info["digest"], prompts, prompts_digest(prompts), settings, snakemake.input.points, p.points, p.cache, fields
)
write_jsonl(snakemake.output[0], records)
