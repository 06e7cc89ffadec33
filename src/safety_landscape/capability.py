"""Capability stage: at every grid point, with the weights set exactly as for generation, the
perplexity of reference answers to benign prompts and the accuracy on multiple-choice questions.

Multiple choice is scored as in MMLU's zero-shot evaluation: the prompt lists the choices and the
predicted answer is the letter whose continuation of the prompt is most likely. Results per point
go to their output file and to a content-addressed cache, so an interrupted job resumes.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

from .engine import _left_pad, chat_texts
from .engines import EngineOptions, HFEngine
from .io import read_json, sha256_json, write_json
from .modeling import resolve_device, resolve_dtype
from .points import read_point

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sequences:
    """Tokenized texts scored by the model: `ids` per sequence, scored from position `start` on."""

    ids: list[list[int]]
    start: list[int]


@dataclass(frozen=True)
class CapabilityTask:
    references: Sequences  # prompt + reference answer, scored on the answer
    choices: Sequences  # prompt + each choice letter, scored on the letter (question-major)
    answers: list[int]  # index of the correct letter per question
    letters: int  # choices per question
    digest: str  # identity of the texts, system prompt and template
    # When every letter adds exactly one token to its prompt (the usual case), one forward pass of
    # each question's prompt scores all its letters: the prompts and the letters' token ids.
    questions: list[list[int]] | None = None
    letter_ids: list[int] | None = None


def multiple_choice_prompt(row: dict, letters: str) -> str:
    options = "\n".join(f"{letter}. {row[letter]}" for letter in letters)
    return f"{row['question']}\n{options}\nAnswer with the letter of the correct choice."


def _continuations(tokenizer, prompts: list[list[int]], texts: list[str], continuations: list[str]) -> Sequences:
    """Each rendered prompt followed by its continuation, tokenized together (so the boundary merges as
    in real text); scoring starts where the joint tokenization leaves the prompt's tokens."""
    ids, start = [], []
    for prompt, text, continuation in zip(prompts, texts, continuations, strict=True):
        joint = tokenizer(text + continuation, add_special_tokens=False)["input_ids"]
        shared = next((i for i, (x, y) in enumerate(zip(prompt, joint)) if x != y), min(len(prompt), len(joint)))
        if shared == len(joint):
            raise ValueError(f"the continuation {continuation!r} adds no token to its prompt; check the chat template")
        ids.append(joint)
        start.append(shared)
    return Sequences(ids, start)


def _single_token_letters(prompts: list[list[int]], choices: Sequences, letters: int) -> list[int] | None:
    """The letters' token ids when each letter is one token appended to its question's prompt, else None."""
    letter_ids = [ids[-1] for ids in choices.ids[:letters]]
    for q, prompt in enumerate(prompts):
        for k in range(letters):
            ids = choices.ids[q * letters + k]
            if ids[:-1] != prompt or ids[-1] != letter_ids[k]:
                return None
    return letter_ids


def build_task(tokenizer, references: list[dict], questions: pd.DataFrame, system_prompt: str | None, chat_template: bool) -> CapabilityTask:
    """Tokenize both sets the way generation renders prompts (chat template and system prompt)."""

    def rendered(prompts: list[str]) -> tuple[list[list[int]], list[str]]:
        texts = chat_texts(tokenizer, prompts, system_prompt) if chat_template else [(tokenizer.bos_token or "") + p for p in prompts]
        return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts], texts

    ref_ids, ref_texts = rendered([r["prompt"] for r in references])
    eos = tokenizer.eos_token or ""
    refs = _continuations(tokenizer, ref_ids, ref_texts, [r["reference"] + eos for r in references])
    letters = questions["choices"].iloc[0]
    q_ids, q_texts = rendered([multiple_choice_prompt(row, letters) for row in questions.to_dict("records")])
    choices = _continuations(
        tokenizer, [i for i in q_ids for _ in letters], [t for t in q_texts for _ in letters], [letter for _ in q_ids for letter in letters]
    )
    letter_ids = _single_token_letters(q_ids, choices, len(letters))
    digest = sha256_json({"references": references, "questions": questions.to_dict("records"), "system_prompt": system_prompt,
                          "chat_template": chat_template, "tokens": [refs.ids, choices.ids]})
    return CapabilityTask(refs, choices, [letters.index(a) for a in questions["answer"]], len(letters), digest,
                          q_ids if letter_ids else None, letter_ids)


def _left_padded(model, batch: list[list[int]], pad_id: int, keep: int) -> torch.Tensor:
    """Log-probabilities at the last `keep` positions of each left-padded sequence, [batch, keep, vocab]
    (the vocabulary projection runs on those positions only)."""
    ids, mask = _left_pad(batch, pad_id, model.device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep).logits
    return torch.log_softmax(logits.float(), dim=-1).cpu()


@torch.inference_mode()
def continuation_logprobs(model, sequences: Sequences, batch_size: int, pad_id: int) -> list[torch.Tensor]:
    """Log-probability of every scored token of every sequence."""
    result = []
    for lo in range(0, len(sequences.ids), batch_size):
        batch = sequences.ids[lo : lo + batch_size]
        scored = [len(s) - start for s, start in zip(batch, sequences.start[lo : lo + batch_size])]
        logprobs = _left_padded(model, batch, pad_id, max(scored) + 1)
        for row, (s, n) in enumerate(zip(batch, scored)):
            # the token at position p is predicted at p - 1: the last n tokens by the n positions before the last
            result.append(logprobs[row, -(n + 1) : -1].gather(-1, torch.tensor(s[-n:])[:, None]).squeeze(-1))
    return result


@torch.inference_mode()
def next_token_logprobs(model, prompts: list[list[int]], token_ids: list[int], batch_size: int, pad_id: int) -> torch.Tensor:
    """Log-probability of each of `token_ids` right after each prompt, [prompts, tokens]."""
    rows = [_left_padded(model, prompts[lo : lo + batch_size], pad_id, 1)[:, -1, token_ids] for lo in range(0, len(prompts), batch_size)]
    return torch.cat(rows)


def choice_logprobs(model, task: CapabilityTask, batch_size: int, pad_id: int) -> torch.Tensor:
    """Log-probability of each choice letter after its question, [questions, letters]."""
    if task.letter_ids is not None:
        return next_token_logprobs(model, task.questions, task.letter_ids, batch_size, pad_id)
    sums = [float(c.sum()) for c in continuation_logprobs(model, task.choices, batch_size, pad_id)]
    return torch.tensor(sums).view(-1, task.letters)


def capability_scores(model, task: CapabilityTask, batch_size: int, pad_id: int) -> dict:
    """Perplexity of the reference answers (over all their tokens) and multiple-choice accuracy (%)."""
    refs = continuation_logprobs(model, task.references, batch_size, pad_id)
    tokens = sum(r.numel() for r in refs)
    nll = -float(sum(r.sum() for r in refs)) / tokens
    choice = choice_logprobs(model, task, batch_size, pad_id)
    probs = torch.softmax(choice, dim=-1)
    answers = torch.tensor(task.answers)
    correct = choice.argmax(-1) == answers
    return {
        "perplexity": math.exp(nll),
        "nll_per_token": nll,
        "reference_tokens": tokens,
        "mc_accuracy": 100.0 * float(correct.float().mean()),
        "mc_correct_probability": float(probs[torch.arange(len(answers)), answers].mean()),
        "n_references": len(refs),
        "n_questions": len(answers),
    }


def open_capability_engine(gen: dict, model_path: str, trust_remote_code: bool) -> HFEngine:
    """A transformers engine on the device and dtype of the `generation` config (forward passes only)."""
    device = resolve_device(gen["device"])
    return HFEngine(EngineOptions(model_path=model_path, dtype=resolve_dtype(gen["dtype"], device), device=device,
                                  offload=gen["offload"], trust_remote_code=trust_remote_code))


def score_points(
    engine: HFEngine, model_digest: str, task: CapabilityTask, batch_size: int,
    point_files: Sequence[str], output_files: Sequence[str], cache_dir: str, labels: Sequence[dict],
) -> None:
    """Write one capability JSON per point, reusing cached scores of equal weights and task."""
    pad_id = engine.tokenizer.pad_token_id if engine.tokenizer.pad_token_id is not None else 0
    dtype = str(next(engine.model.parameters()).dtype)
    for point_file, out, label in zip(point_files, output_files, labels, strict=True):
        terms, meta = read_point(point_file)
        if meta["model_digest"] != model_digest:
            raise ValueError(f"{point_file} was made for another model; rerun the materialize rule")
        nonzero = sorted((t.digest, t.coefficient) for t in terms if t.coefficient != 0.0)
        cached = Path(cache_dir) / f"{sha256_json({'model': model_digest, 'terms': nonzero, 'task': task.digest, 'dtype': dtype})}.json"
        if cached.is_file():
            log.info("%s: reusing cached scores %s", label, cached.name)
            write_json(out, label | read_json(cached))
            continue
        start = time.perf_counter()
        engine.set_point(terms)
        scores = capability_scores(engine.model, task, batch_size, pad_id)
        write_json(cached, scores)
        write_json(out, label | scores)
        log.info("%s: perplexity %.2f, accuracy %.1f %% (%.1f s)", label, scores["perplexity"], scores["mc_accuracy"], time.perf_counter() - start)
