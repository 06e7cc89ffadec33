"""Generate responses at every grid point of one job, loading the model once."""

import torch

from safety_landscape.engines import EngineOptions, open_engine
from safety_landscape.generate import DecodingSettings, generate_points
from safety_landscape.gpus import claim_gpus, visible_gpus
from safety_landscape.io import log_to_file, read_json
from safety_landscape.modeling import resolve_device, resolve_dtype
from safety_landscape.prompts import prompts_digest, select_prompts

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
p = snakemake.params
gen = p.generation
model_info = read_json(snakemake.input.model)
if gen["device"] in ("auto", "cuda"):  # claim this job's own GPUs before CUDA starts
    gpus = [str(g) for g in gen["gpus"]] if gen["gpus"] is not None else visible_gpus()
    gpu_locks = claim_gpus(gen["tensor_parallel_size"], gpus, p.gpu_locks) if gpus else []  # held until the job ends
device = resolve_device(gen["device"])
dtype = resolve_dtype(gen["dtype"], device)
prompts = select_prompts(snakemake.input.prompts, p.prompts["column"], p.prompts["start"], p.prompts["count"])
settings = DecodingSettings(
    max_new_tokens=gen["max_new_tokens"],
    batch_size=gen["batch_size"],
    system_prompt=gen["system_prompt"],
    chat_template=gen["chat_template"],
    stop_on_refusal=gen["stop_on_refusal"],
    dtype=dtype,
    engine=gen["engine"],
)
options = EngineOptions(
    model_path=model_info["path"],
    dtype=dtype,
    device=device,
    offload=gen["offload"],
    trust_remote_code=p.trust_remote_code,
    tensor_parallel_size=gen["tensor_parallel_size"],
    max_model_len=gen["max_model_len"],
)
engine = open_engine(gen["engine"], options)
generate_points(
    engine, model_info["digest"], prompts, prompts_digest(prompts), settings,
    snakemake.input.points, snakemake.output, p.cache, p.labels,
)
