"""Build the safety-finetuning pairs: harmful goals -> refusals, benign prompts -> the model's own answers."""

import torch

from safety_landscape.align import alignment_pairs
from safety_landscape.decoding import model_answers
from safety_landscape.io import log_to_file, read_json, write_jsonl
from safety_landscape.modeling import load_model, load_tokenizer
from safety_landscape.prompts import select_prompts

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
cfg = snakemake.params.align
lo, hi = cfg["harmful_rows"]
harmful = select_prompts(snakemake.input.harmful, cfg["harmful_column"], lo, hi - lo)
refusals = open(snakemake.input.refusals, encoding="utf-8").read().splitlines()
benign = open(snakemake.input.benign, encoding="utf-8").read().splitlines()
path = read_json(snakemake.input.base)["path"]
tokenizer = load_tokenizer(path, snakemake.params.trust_remote_code)
model = load_model(path, trust_remote_code=snakemake.params.trust_remote_code)
answers = model_answers(model, tokenizer, benign, cfg["benign_answer_tokens"], 32, None)
write_jsonl(snakemake.output.pairs, alignment_pairs(harmful, refusals, benign, answers))
