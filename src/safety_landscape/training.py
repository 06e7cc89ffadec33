"""Supervised finetuning on (prompt, response) pairs, loss on the response only, shared by the
align stage (safety finetuning) and the finetune stage (the paper's finetuning attacks)."""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from tqdm import tqdm

from .decoding import render_prompts
from .io import atomic_folder

log = logging.getLogger(__name__)
_LAYER_INDEX = re.compile(r"\.layers\.(\d+)\.")


@dataclass(frozen=True)
class SFTSettings:
    epochs: int = 1
    learning_rate: float = 1e-4
    batch_size: int = 8
    warmup_fraction: float = 0.1
    weight_decay: float = 0.0
    max_length: int = 256
    seed: int = 0
    system_prompt: str | None = None
    scheduler: str = "linear"  # "linear" (warmup + linear decay per step) or "step" (x step_gamma per epoch)
    step_gamma: float = 0.85
    max_grad_norm: float | None = 1.0  # None: no clipping

    @classmethod
    def from_config(cls, section: dict, **extra) -> "SFTSettings":
        """Settings from a config section (align or finetune): the fields it sets, the rest at their defaults."""
        return cls(**{name: section[name] for name in cls.__dataclass_fields__ if name in section}, **extra)


def encode_pair(tokenizer, prompt: str, response: str, system_prompt: str | None, max_length: int) -> tuple[list[int], list[int]]:
    """Input ids and labels of one chat exchange, the response ended by the EOS token (so the model
    learns to stop); prompt tokens are masked out of the loss (-100). Sequences longer than
    `max_length` are cut, which can cut off the EOS."""
    prompt_ids = render_prompts(tokenizer, [prompt], system_prompt, True)[0]
    eos = tokenizer.eos_token or ""
    response_ids = tokenizer(response.removesuffix(eos), add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = (prompt_ids + response_ids)[:max_length]
    labels = ([-100] * len(prompt_ids) + response_ids)[:max_length]
    return ids, labels


def freeze_below_layer(model, first_trainable: int | None) -> int:
    """Freeze embeddings and layers below `first_trainable` (None: train all). Returns trainable parameter count."""
    for name, param in model.named_parameters():
        if first_trainable is None:
            param.requires_grad_(True)
            continue
        match = _LAYER_INDEX.search(name)
        param.requires_grad_(bool(match) and int(match.group(1)) >= first_trainable)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _collate(examples: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, (x, y) in enumerate(examples):
        ids[row, : len(x)] = torch.tensor(x)
        labels[row, : len(y)] = torch.tensor(y)
        mask[row, : len(x)] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def supervised_finetune(
    model, tokenizer, pairs: Sequence[dict], settings: SFTSettings, on_epoch_end: Callable[[int], None] | None = None
) -> list[float]:
    """Train the parameters of `model` that require grad, in place, with AdamW and the schedule of
    `settings`; `on_epoch_end(epoch)` (1-based) runs after every epoch. Returns every step's loss."""
    from transformers import get_linear_schedule_with_warmup

    torch.manual_seed(settings.seed)
    examples = [encode_pair(tokenizer, p["prompt"], p["response"], settings.system_prompt, settings.max_length) for p in pairs]
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("no parameter requires grad: unfreeze the parameters to train first")
    log.info(
        "training %d of %d parameters on %d pairs",
        sum(p.numel() for p in params),
        sum(p.numel() for p in model.parameters()),
        len(pairs),
    )
    device = params[0].device
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    steps = settings.epochs * math.ceil(len(examples) / settings.batch_size)
    if settings.scheduler == "step":
        step_scheduler, epoch_scheduler = None, torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=settings.step_gamma)
    else:
        step_scheduler, epoch_scheduler = (
            get_linear_schedule_with_warmup(optimizer, int(settings.warmup_fraction * steps), steps),
            None,
        )
    generator = torch.Generator().manual_seed(settings.seed)
    model.train()
    losses = []
    with tqdm(total=steps, desc="finetune", mininterval=5) as bar:
        for epoch in range(1, settings.epochs + 1):
            order = torch.randperm(len(examples), generator=generator).tolist()
            for start in range(0, len(order), settings.batch_size):
                batch = _collate([examples[i] for i in order[start : start + settings.batch_size]], tokenizer.pad_token_id)
                loss = model(**{k: v.to(device) for k, v in batch.items()}).loss
                loss.backward()
                if settings.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
                optimizer.step()
                if step_scheduler is not None:
                    step_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(loss.item())
                bar.set_postfix(epoch=epoch, loss=f"{losses[-1]:.3f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
                bar.update()
            if epoch_scheduler is not None:
                epoch_scheduler.step()
            if on_epoch_end is not None:
                on_epoch_end(epoch)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return losses


def save_model_folder(model, tokenizer, out_dir: str | os.PathLike) -> None:
    """Write a safetensors HF folder atomically (temp folder + rename)."""
    with atomic_folder(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
