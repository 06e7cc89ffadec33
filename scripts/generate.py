"""Generate responses at every grid point of one job, loading the model once."""

import torch

from safety_landscape.generate import claim_generation_gpus, generate_job, open_generation
from safety_landscape.io import log_to_file, read_json
from safety_landscape.prompts import contextual_prompts, prompts_digest, select_contexts, select_prompts

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
p = snakemake.params
gpu_locks = claim_generation_gpus(p.generation, p.gpu_locks)  # held until the job ends
model_info = read_json(snakemake.input.model)
engine, settings = open_generation(p.generation, model_info["path"], p.trust_remote_code)
cfg = p.prompts
prompts = select_prompts(snakemake.input.prompts, cfg["column"], cfg["start"], cfg["count"], cfg["where"])
fields = None
if cfg.get("context_column"):  # contextual behaviours: the model reads each one's context before it
    contexts = select_contexts(snakemake.input.prompts, cfg["context_column"], cfg["start"], cfg["count"], cfg["where"])
    prompts, fields = contextual_prompts(prompts, contexts)
generate_job(
    engine,
    model_info["digest"],
    prompts,
    prompts_digest(prompts),
    settings,
    snakemake.input.points,
    p.points,
    snakemake.output[0],
    p.cache,
    fields,
)
