"""Capability scores (perplexity, MMLU k-shot and zero-shot multiple-choice accuracy) at every point of one landscape job."""

import torch

from safety_landscape.capability import build_task, open_capability_engine, score_job
from safety_landscape.generate import claim_generation_gpus
from safety_landscape.io import log_to_file, read_json
from safety_landscape.prompts import load_mmlu, load_multiple_choice, load_references

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
p = snakemake.params
c, mmlu = p.capability, p.capability["mmlu"]
gpu_locks = claim_generation_gpus(p.generation | {"tensor_parallel_size": 1}, p.gpu_locks)  # held until the job ends
model_info = read_json(snakemake.input.model)
engine = open_capability_engine(p.generation, model_info["path"], p.trust_remote_code)
task = build_task(
    engine.tokenizer,
    load_references(c["references"]),
    p.generation["system_prompt"],
    p.generation["chat_template"],
    questions=load_multiple_choice(c["questions"]) if c["questions"] else None,
    mmlu=load_mmlu(mmlu["folder"], mmlu["subjects"], mmlu["shots"]) if mmlu["folder"] else None,
)
score_job(engine, model_info["digest"], task, c["batch_size"], snakemake.input.points, p.points, snakemake.output[0], p.cache)
