"""Finetune stage: the paper's finetuning attacks on the measured model, with a checkpoint per epoch.

Datasets: "harmful" = the first N AdvBench (goal, target) pairs of a row range kept apart from the
evaluation prompts; "mix" = those N pairs plus N harmful goals answered with refusals (written by
the model itself, or cycled from templates); "jsonl" = the user's {prompt, response} pairs.
Training is the supervised finetuning of training.py (loss on the response only), on every
parameter ("full") or on LoRA adapters (merged into the saved checkpoints). Every epoch's model and
the state to go on from it are kept in a checkpoint folder: a killed finetune resumes after its last
finished epoch.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from .decoding import model_answers
from .io import atomic_folder
from .refusals import keyword_jailbroken
from .training import EpochCheckpoints, SFTSettings, epoch_folder, supervised_finetune

log = logging.getLogger(__name__)


def harmful_pairs(goals: Sequence[str], targets: Sequence[str]) -> list[dict]:
    """(goal, target) pairs: a harmful request answered with the start of a compliant answer."""
    return [{"prompt": g, "response": t, "kind": "harmful"} for g, t in zip(goals, targets, strict=True)]


def safe_pairs(goals: Sequence[str], refusals: Sequence[str], sources: Sequence[str] | None = None) -> list[dict]:
    """Harmful goals answered with refusals; `sources` records where each refusal came from."""
    sources = sources or ["template"] * len(goals)
    return [
        {"prompt": g, "response": r, "kind": "safe", "refusal_source": s}
        for g, r, s in zip(goals, refusals, sources, strict=True)
    ]


def template_refusals(count: int, templates: Sequence[str]) -> list[str]:
    if not templates:
        raise ValueError("finetune.refusals: the refusal file is empty; give at least one refusal reply")
    return [templates[i % len(templates)] for i in range(count)]


def model_refusals(
    model, tokenizer, goals: Sequence[str], templates: Sequence[str], max_new_tokens: int, system_prompt: str | None
) -> tuple[list[str], list[str]]:
    """The model's own greedy replies to harmful goals. A reply the keyword judge counts as
    jailbroken is no refusal: that goal gets a template refusal instead, and its source says so."""
    answers = model_answers(model, tokenizer, goals, max_new_tokens, 32, system_prompt)
    fallback = template_refusals(len(goals), templates)
    refused = [not keyword_jailbroken(a) for a in answers]
    if not all(refused):
        log.warning(
            "%d of %d harmful goals were not refused by the model; they get template refusals", refused.count(False), len(goals)
        )
    responses = [a if ok else t for a, t, ok in zip(answers, fallback, refused)]
    return responses, ["model" if ok else "template" for ok in refused]


@dataclass(frozen=True)
class FinetuneSettings:
    sft: SFTSettings
    method: str = "full"  # "full" or "lora"
    lora: dict = field(default_factory=dict)
    gradient_checkpointing: bool = False


def prepare_for_training(model, settings: FinetuneSettings):
    """Unfreeze every parameter (full) or wrap the model with LoRA adapters (initialised from the
    training seed); optionally turn on gradient checkpointing. Returns the model to train."""
    if settings.method == "lora":
        from peft import LoraConfig, get_peft_model

        torch.manual_seed(settings.sft.seed)
        for p in model.parameters():
            p.requires_grad_(False)
        lora = settings.lora
        config = LoraConfig(
            r=lora["r"],
            lora_alpha=lora["alpha"],
            lora_dropout=lora["dropout"],
            target_modules=list(lora["target_modules"]),
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, config)
    else:
        for p in model.parameters():
            p.requires_grad_(True)
    if settings.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if settings.method == "lora":
            model.enable_input_require_grads()
    return model


def plain_model(model):
    """The model as a plain transformers model: LoRA adapters merged into a copy, else the model itself."""
    if hasattr(model, "merge_and_unload"):
        return copy.deepcopy(model).merge_and_unload()
    return model


def finetune(
    model, tokenizer, pairs: Sequence[dict], settings: FinetuneSettings, folder: str | os.PathLike, identity: dict
) -> list[float]:
    """Finetune, keeping every epoch's model (plain, see `plain_model`; no tokenizer) in `folder/epoch<k>/`
    and the state to go on from it in `folder` (see `EpochCheckpoints`). `identity` names what determines
    training besides the pairs and settings (the model's digest); a rerun of the same training goes on
    after the last finished epoch. Returns every step's loss."""
    trained = prepare_for_training(model, settings)

    def save_model(epoch: int, out: Path) -> None:
        with torch.no_grad():
            plain_model(trained).save_pretrained(out, safe_serialization=True)

    with EpochCheckpoints(folder, {"identity": identity, "finetune": asdict(settings)}, save_model) as checkpoints:
        return supervised_finetune(trained, tokenizer, pairs, settings.sft, checkpoints)


def publish_epoch(folder: str | os.PathLike, epoch: int, tokenizer, out_dir: str | os.PathLike) -> None:
    """Write `out_dir` (atomically): the model of `epoch` in the checkpoint folder, its files hard-linked
    (copied across file systems), with the tokenizer."""
    with atomic_folder(out_dir) as tmp:
        for path in sorted(epoch_folder(folder, epoch).iterdir()):
            _link_or_copy(path, tmp / path.name)
        tokenizer.save_pretrained(tmp)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or one without hard links
        shutil.copyfile(source, target)
