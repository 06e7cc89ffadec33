"""Generate responses at every grid point of one job, loading the model once."""

import torch

from safety_landscape.generate import DecodingSettings, generate_points
from safety_landscape.io import log_to_file, read_json
from safety_landscape.modeling import load_model, load_tokenizer, resolve_device, resolve_dtype
from safety_landscape.prompts import prompts_digest, select_prompts

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
p = snakemake.params
gen = p.generation
model_info = read_json(snakemake.input.model)
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
tokenizer = load_tokenizer(model_info["path"], p.trust_remote_code)
model = load_model(model_info["path"], dtype, device, p.trust_remote_code)
generate_points(
    model, tokenizer, model_info["digest"], prompts, prompts_digest(prompts), settings,
    snakemake.input.points, snakemake.output, p.cache, p.labels, gen["offload"], model_info["path"],
)
