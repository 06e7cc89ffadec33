"""Check the aligned model: ASR on the first 80 harmful prompts, and how many benign prompts it still answers."""

import torch

from safety_landscape.align import evaluate_alignment
from safety_landscape.io import log_to_file, read_json, write_json
from safety_landscape.modeling import load_model, load_tokenizer
from safety_landscape.prompts import select_prompts

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
p = snakemake.params
path = read_json(snakemake.input.model)["path"]
tokenizer = load_tokenizer(path, p.trust_remote_code)
model = load_model(path, trust_remote_code=p.trust_remote_code)
harmful = select_prompts(snakemake.input.harmful, p.column, 0, 80, p.where)
benign = open(snakemake.input.benign, encoding="utf-8").read().splitlines()
write_json(snakemake.output[0], evaluate_alignment(model, tokenizer, harmful, benign, p.max_new_tokens, p.system_prompt))
