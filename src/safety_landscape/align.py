"""Align stage: turn a chat model into one that refuses harmful requests (the embedded default's
safety finetune): harmful goals paired with refusals, benign prompts with the model's own answers,
trained with `training.supervised_finetune`; then the keyword-judge check of the result.
"""

from __future__ import annotations

from typing import Sequence

from .decoding import greedy_generate, render_prompts


def alignment_pairs(
    harmful_goals: Sequence[str], refusals: Sequence[str], benign_prompts: Sequence[str], benign_answers: Sequence[str]
) -> list[dict]:
    """Harmful goals paired with refusals (cycled), benign prompts paired with the given answers."""
    if not refusals:
        raise ValueError("align.refusals: the refusal file is empty; give at least one refusal reply")
    pairs = [{"prompt": g, "response": refusals[i % len(refusals)], "kind": "harmful"} for i, g in enumerate(harmful_goals)]
    pairs += [{"prompt": p, "response": a, "kind": "benign"} for p, a in zip(benign_prompts, benign_answers, strict=True)]
    return pairs


def evaluate_alignment(
    model, tokenizer, harmful: Sequence[str], benign: Sequence[str], max_new_tokens: int, system_prompt: str | None
) -> dict:
    """Keyword-judge ASR on harmful prompts and the share of benign prompts answered (not refused)."""
    from .metrics import attack_success_rate
    from .refusals import keyword_jailbroken

    def answers(prompts):
        ids = render_prompts(tokenizer, prompts, system_prompt, True)
        return [g.text for g in greedy_generate(model, tokenizer, ids, max_new_tokens, 40)]

    harmful_out, benign_out = answers(harmful), answers(benign)
    answered = [keyword_jailbroken(t) for t in benign_out]
    return {
        "harmful_prompts": len(harmful),
        "asr": attack_success_rate([keyword_jailbroken(t) for t in harmful_out]),
        "benign_prompts": len(benign),
        "benign_answered": int(sum(answered)),
        "benign_examples": [{"prompt": p, "response": r, "answered": a} for p, r, a in zip(benign, benign_out, answered)],
    }
