"""Safety-finetune the base model on the alignment pairs and save it as a safetensors folder."""

import torch

from safety_landscape.io import log_to_file, read_json, read_jsonl, write_json
from safety_landscape.modeling import folder_digest, load_model, load_tokenizer
from safety_landscape.training import SFTSettings, freeze_below_layer, save_model_folder, supervised_finetune

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
cfg = snakemake.params.align
base = read_json(snakemake.input.base)
tokenizer = load_tokenizer(base["path"], snakemake.params.trust_remote_code)
model = load_model(base["path"], trust_remote_code=snakemake.params.trust_remote_code)
settings = SFTSettings.from_config(cfg)
freeze_below_layer(model, cfg["train_from_layer"])
losses = supervised_finetune(model, tokenizer, read_jsonl(snakemake.input.pairs), settings)
save_model_folder(model, tokenizer, snakemake.output.model)
write_json(
    snakemake.output.manifest,
    {
        "source": base["path"],
        "kind": "aligned",
        "path": snakemake.output.model,
        "digest": folder_digest(snakemake.output.model),
        "base_digest": base["digest"],
        "losses": losses,
    },
)
