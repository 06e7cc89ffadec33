"""Align stage: turn a chat model into one that refuses harmful requests (the embedded default's
safety finetune): harmful goals paired with refusals, benign prompts with the model's own answers,
trained with `training.supervised_finetune`; then the keyword-judge check of the result.
"""

from __future__ import annotations

from typing import Sequence

from .decoding import greedy_generate, render_prompts
from .textchecks import is_degenerate, is_echo, is_empty


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
    """Keyword-judge ASR on harmful prompts and how many benign prompts are answered (benign_answer_checks)."""
    from .metrics import attack_success_rate
    from .refusals import keyword_jailbroken

    def answers(prompts):
        ids = render_prompts(tokenizer, prompts, system_prompt, True)
        return [g.text for g in greedy_generate(model, tokenizer, ids, max_new_tokens, 40)]

    harmful_out, benign_out = answers(harmful), answers(benign)
    examples = [{"prompt": p, "response": r, **benign_answer_checks(p, r)} for p, r in zip(benign, benign_out)]
    return {
        "harmful_prompts": len(harmful),
        "asr": attack_success_rate([keyword_jailbroken(t) for t in harmful_out]),
        "benign_prompts": len(benign),
        "benign_answered": sum(e["answered"] for e in examples),
        "benign_examples": examples,
    }


def benign_answer_checks(prompt: str, answer: str) -> dict[str, bool]:
    """Why a benign prompt's answer does or does not count as answered: it is answered only when it is
    neither a refusal (keyword judge) nor empty, degenerate or an echo of the prompt."""
    from .refusals import keyword_jailbroken

    checks = {
        "refused": not keyword_jailbroken(answer),
        "empty": is_empty(answer),
        "degenerate": is_degenerate(answer),
        "echo": is_echo(prompt, answer),
    }
    return {"answered": not any(checks.values()), **checks}
