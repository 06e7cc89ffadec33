"""Batched greedy decoding with the tokenizer's chat template (shared by the align and generate stages)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .refusals import first_refusal_keyword

# Longest refusal keyword is 44 ASCII characters, so it spans at most 44 tokens; a completed
# keyword therefore always lies inside the last KEYWORD_WINDOW tokens of a sequence.
KEYWORD_WINDOW = 48


@dataclass(frozen=True)
class Generation:
    text: str
    num_tokens: int
    finish_reason: str  # "eos", "length" or "refusal"


def render_prompts(tokenizer, prompts: Sequence[str], system_prompt: str | None, use_chat_template: bool) -> list[list[int]]:
    """Token ids of each prompt: chat-formatted (with an optional system message) or raw text."""
    if not use_chat_template:
        return [tokenizer(p)["input_ids"] for p in prompts]
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in chat_texts(tokenizer, prompts, system_prompt)]


def chat_texts(tokenizer, prompts: Sequence[str], system_prompt: str | None) -> list[str]:
    """Each prompt as the chat template renders a user turn (after an optional system message) that
    the assistant is to answer."""
    if tokenizer.chat_template is None:
        raise ValueError("generation.chat_template is true but the tokenizer has no chat template; set it to false")
    texts = []
    for p in prompts:
        messages = [] if system_prompt is None else [{"role": "system", "content": system_prompt}]
        messages.append({"role": "user", "content": p})
        texts.append(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    return texts


def eos_token_ids(model, tokenizer) -> set[int]:
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, (list, tuple)) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def decode_in_batches(
    prompt_ids: Sequence[Sequence[int]], batch_size: int, decode_batch: Callable[[list[Sequence[int]]], list[Generation]]
) -> list[Generation]:
    """Run `decode_batch` over batches of length-sorted prompts (little padding); results in prompt order."""
    order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]))
    results: list[Generation | None] = [None] * len(prompt_ids)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        for i, gen in zip(batch, decode_batch([prompt_ids[i] for i in batch]), strict=True):
            results[i] = gen
    return results


@torch.inference_mode()
def greedy_generate(
    model,
    tokenizer,
    prompt_ids: Sequence[Sequence[int]],
    max_new_tokens: int,
    batch_size: int,
    stop_on_refusal: bool = False,
    min_new_tokens: int = 0,
) -> list[Generation]:
    """Greedy-decode every prompt; batches are formed from length-sorted prompts and shrink as sequences finish.

    EOS does not end a sequence before it has `min_new_tokens` tokens (the EOS token is kept and decoding goes
    on; unlike `generate`'s `min_new_tokens`, which bans EOS); the refusal stop is not affected.
    """
    eos = eos_token_ids(model, tokenizer)
    return decode_in_batches(
        prompt_ids,
        batch_size,
        lambda batch: _generate_batch(model, tokenizer, batch, max_new_tokens, eos, stop_on_refusal, min_new_tokens),
    )


def model_answers(
    model, tokenizer, prompts: Sequence[str], max_new_tokens: int, batch_size: int, system_prompt: str | None
) -> list[str]:
    """The model's own greedy answers, ended with EOS when the model ended them."""
    gens = greedy_generate(model, tokenizer, render_prompts(tokenizer, prompts, system_prompt, True), max_new_tokens, batch_size)
    return [g.text + (tokenizer.eos_token if g.finish_reason == "eos" else "") for g in gens]


def left_pad(prompt_ids: Sequence[Sequence[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask of left-padded sequences, [batch, longest], on `device`."""
    width = max(len(p) for p in prompt_ids)
    ids = torch.full((len(prompt_ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompt_ids), width), dtype=torch.long)
    for row, p in enumerate(prompt_ids):
        ids[row, width - len(p) :] = torch.tensor(p, dtype=torch.long)
        mask[row, width - len(p) :] = 1
    return ids.to(device), mask.to(device)


def _generate_batch(
    model, tokenizer, prompt_ids, max_new_tokens, eos: set[int], stop_on_refusal: bool, min_new_tokens: int = 0
) -> list[Generation]:
    from transformers import DynamicCache

    device = model.device
    ids, mask = left_pad(prompt_ids, tokenizer.pad_token_id, device)
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    cache = DynamicCache(config=model.config)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache, logits_to_keep=1).logits
    next_pos = positions[:, -1] + 1
    active = torch.arange(len(prompt_ids), device=device)
    tokens: list[list[int]] = [[] for _ in prompt_ids]
    reasons = ["length"] * len(prompt_ids)
    for step in range(max_new_tokens):
        next_tok = logits[:, -1].argmax(-1)
        keep = []
        for row, tok in zip(active.tolist(), next_tok.tolist()):
            tokens[row].append(tok)
            reason = stop_reason(tokenizer, tokens[row], eos, stop_on_refusal, min_new_tokens)
            if reason:
                reasons[row] = reason
            keep.append(reason is None)
        if step == max_new_tokens - 1 or not any(keep):
            break
        if not all(keep):
            idx = torch.tensor(keep, device=device).nonzero().squeeze(-1)
            cache.batch_select_indices(idx)
            active, next_tok, mask, next_pos = active[idx], next_tok[idx], mask[idx], next_pos[idx]
        mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=-1)
        logits = model(
            input_ids=next_tok[:, None], attention_mask=mask, position_ids=next_pos[:, None], past_key_values=cache
        ).logits
        next_pos = next_pos + 1
    return [Generation(tokenizer.decode(t, skip_special_tokens=True), len(t), reason) for t, reason in zip(tokens, reasons)]


def stop_reason(tokenizer, tokens: list[int], eos: set[int], stop_on_refusal: bool, min_new_tokens: int = 0) -> str | None:
    """Why a sequence ends after its latest token, or None when it goes on (EOS counts from `min_new_tokens` tokens on)."""
    if tokens[-1] in eos and len(tokens) >= min_new_tokens:
        return "eos"
    if stop_on_refusal and first_refusal_keyword(tokenizer.decode(tokens[-KEYWORD_WINDOW:])):
        return "refusal"
    return None
