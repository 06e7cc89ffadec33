"""Finetune the measured model on one dataset and save a safetensors checkpoint after every epoch.

Every epoch's model and the state to go on from it are kept in the cache, in a folder named by the
digest of everything that determines training: a killed job, rerun, resumes after its last finished
epoch. The checkpoints of this job's outputs are hard links to the cached epochs."""

from pathlib import Path

import torch

from safety_landscape.finetune import FinetuneSettings, finetune, publish_epoch
from safety_landscape.gpus import claim_gpus, visible_gpus
from safety_landscape.io import log_to_file, read_json, read_jsonl, sha256_file, sha256_json, write_json
from safety_landscape.modeling import folder_digest, load_model, load_tokenizer, resolve_device, resolve_dtype
from safety_landscape.training import SFTSettings

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
p = snakemake.params
ft = p.finetune
gpus = visible_gpus() if ft["device"] in ("auto", "cuda") else []
if gpus:
    gpu_locks = claim_gpus(1, gpus, p.gpu_locks)  # held until the job ends
device = resolve_device(ft["device"])
dtype = resolve_dtype(ft["dtype"], device)
base = read_json(snakemake.input.model)
tokenizer = load_tokenizer(base["path"], p.trust_remote_code)
model = load_model(base["path"], dtype, device, p.trust_remote_code)
settings = FinetuneSettings(
    sft=SFTSettings.from_config(ft, system_prompt=p.system_prompt),
    method=ft["method"],
    lora=ft["lora"],
    gradient_checkpointing=ft["gradient_checkpointing"]
    if ft["gradient_checkpointing"] is not None
    else device.startswith("cuda"),
)
identity = {
    "model": base["digest"],
    "model_config": sha256_file(Path(base["path"]) / "config.json"),
    "pairs": sha256_file(snakemake.input.pairs),
    "settings": ft,
    "system_prompt": p.system_prompt,
    "device": device,
    "dtype": dtype,
    "code": p.code,  # the script and the package code it runs
}
checkpoints = Path(p.checkpoints) / sha256_json(identity)
losses = finetune(model, tokenizer, read_jsonl(snakemake.input.pairs), settings, checkpoints, identity)
out = snakemake.output
for epoch, (folder, manifest) in enumerate(zip(out.models, out.manifests, strict=True), start=1):
    publish_epoch(checkpoints, epoch, tokenizer, folder)
    write_json(
        manifest,
        {
            "source": base["path"],
            "kind": "finetuned",
            "dataset": snakemake.wildcards.dataset,
            "epoch": epoch,
            "method": ft["method"],
            "dtype": dtype,
            "path": folder,
            "digest": folder_digest(folder),
            "base_digest": base["digest"],
        },
    )
write_json(
    out.training, {"dataset": snakemake.wildcards.dataset, "device": device, "dtype": dtype, "settings": ft, "losses": losses}
)
