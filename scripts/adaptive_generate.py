"""Generate responses at the new points of one adaptive round, for every main landscape still sampling,
loading the model once."""

import torch

from safety_landscape.generate import claim_generation_gpus, job_records, open_generation
from safety_landscape.io import log_to_file, read_json, write_jsonl
from safety_landscape.plan import point_name
from safety_landscape.prompts import prompts_digest, source_prompts

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
p = snakemake.params
gpu_locks = claim_generation_gpus(p.generation, p.gpu_locks)  # held until the job ends
model_info = read_json(snakemake.input.model)
digest = model_info["digest"]
points_dirs = dict(zip(p.landscapes, snakemake.input.points))
engine, settings = open_generation(p.generation, model_info["path"], p.trust_remote_code)
prompts, fields = source_prompts(snakemake.input.prompts, p.prompts)
prompts_key = prompts_digest(prompts)
records = []
for plan in map(read_json, snakemake.input.plans):
    name = plan["landscape"]
    points = [{"landscape": name, "name": point_name(coords), **dict(zip("ab", coords))} for coords in plan["new"]]
    records += job_records(engine, digest, prompts, prompts_key, settings, points_dirs[name], points, p.cache, fields)
write_jsonl(snakemake.output[0], records)
