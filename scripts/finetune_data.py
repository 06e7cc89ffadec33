"""Build one finetuning dataset: harmful N-shot, mix (N harmful + N refused), or the user's JSONL."""

import torch

from safety_landscape.finetune import harmful_pairs, model_refusals, safe_pairs, template_refusals
from safety_landscape.io import log_to_file, read_json, write_jsonl
from safety_landscape.modeling import load_model, load_tokenizer
from safety_landscape.prompts import load_pairs, select_pairs, select_prompts

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
p = snakemake.params
spec, ft = p.spec, p.finetune
if spec["kind"] == "jsonl":
    pairs = load_pairs(spec["file"])
else:
    goals, targets = select_pairs(
        ft["harmful_file"], ft["harmful_column"], ft["target_column"], ft["harmful_rows"][0], spec["shots"]
    )
    pairs = harmful_pairs(goals, targets)
    if spec["kind"] == "mix":
        safe_goals = select_prompts(ft["harmful_file"], ft["harmful_column"], ft["safe_rows"][0], spec["shots"])
        templates = open(snakemake.input.refusals, encoding="utf-8").read().splitlines()
        if ft["safe_responses"] == "model":
            path = read_json(snakemake.input.model)["path"]
            model, tokenizer = load_model(path, trust_remote_code=p.trust_remote_code), load_tokenizer(path, p.trust_remote_code)
            pairs += safe_pairs(
                safe_goals, *model_refusals(model, tokenizer, safe_goals, templates, p.max_new_tokens, p.system_prompt)
            )
        else:
            pairs += safe_pairs(safe_goals, template_refusals(len(safe_goals), templates))
write_jsonl(snakemake.output[0], pairs)
