"""Answer evaluation prompt sets with checkpoints (the model before finetuning, or finetuning epochs)."""

import torch

from safety_landscape.generate import claim_generation_gpus, generate_unperturbed, open_generation
from safety_landscape.io import log_to_file, read_json, write_jsonl
from safety_landscape.prompts import prompts_digest, select_prompts

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
p = snakemake.params
gpu_locks = claim_generation_gpus(p.generation, p.gpu_locks)  # held until the job ends
loaded, engine, records = None, None, []
for manifest, checkpoint, spec in p.evaluations:
    model_info = read_json(manifest)
    if manifest != loaded:
        del engine  # one model in memory at a time
        engine, settings = open_generation(p.generation, model_info["path"], p.trust_remote_code)
        loaded = manifest
    prompts = select_prompts(spec["file"], spec["column"], spec["start"], spec["count"])
    label = {"checkpoint": checkpoint, "eval_set": spec["name"]}
    records += generate_unperturbed(engine, model_info["digest"], prompts, prompts_digest(prompts), settings, p.cache, label)
write_jsonl(snakemake.output[0], records)
