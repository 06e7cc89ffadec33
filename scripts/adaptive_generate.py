"""Generate responses at the new points of one round of an adaptive grid, loading the model once."""

import torch

from safety_landscape.generate import claim_generation_gpus, generate_job, open_generation
from safety_landscape.io import log_to_file, read_json
from safety_landscape.plan import point_name
from safety_landscape.prompts import prompts_digest, source_prompts

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
p = snakemake.params
gpu_locks = claim_generation_gpus(p.generation, p.gpu_locks)  # held until the job ends
model_info = read_json(snakemake.input.model)
plan = read_json(snakemake.input.plan)
points = [{"landscape": p.landscape, "name": point_name(coords), **dict(zip("ab", coords))} for coords in plan["new"]]
engine, settings = open_generation(p.generation, model_info["path"], p.trust_remote_code)
prompts, fields = source_prompts(snakemake.input.prompts, p.prompts)
generate_job(
    engine,
    model_info["digest"],
    prompts,
    prompts_digest(prompts),
    settings,
    snakemake.input.points,
    points,
    snakemake.output[0],
    p.cache,
    fields,
)
