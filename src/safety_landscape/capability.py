"""Capability stage: at every grid point, with the weights set exactly as for generation, the
perplexity of reference answers to benign prompts, the MMLU k-shot accuracy (the paper's measure)
and, optionally, the accuracy on zero-shot multiple-choice questions asked in the chat template.

MMLU is scored as in the paper's evaluation code: every test question gets its own k-shot prompt
(raw text, no chat template) and the predicted answer is the letter A-D whose token is most likely
next. Zero-shot questions list their choices in the chat template; the predicted answer is the most
likely letter. Results per point go to their output file and to a content-addressed cache, so an
interrupted job resumes.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

from .decoding import chat_texts, left_pad
from .engines import EngineOptions, HFEngine
from .io import sha256_json, write_jsonl
from .modeling import resolve_device, resolve_dtype
from .points import job_results, point_key
from .prompts import MMLU_LETTERS
from .provenance import code_digest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sequences:
    """Tokenized texts scored by the model: `ids` per sequence, scored from position `start` on."""

    ids: list[list[int]]
    start: list[int]


@dataclass(frozen=True)
class ChoiceTask:
    """Zero-shot multiple-choice questions rendered like generation prompts."""

    sequences: Sequences  # prompt + each choice letter, scored on the letter (question-major)
    answers: list[int]  # index of the correct letter per question
    letters: int  # choices per question
    # When every letter adds exactly one token to its prompt (the usual case), one forward pass of
    # each question's prompt scores all its letters: the prompts and the letters' token ids.
    prompts: list[list[int]] | None = None
    letter_ids: list[int] | None = None


@dataclass(frozen=True)
class MMLUTask:
    """MMLU test questions, each in its own k-shot prompt."""

    prompts: list[list[int]]  # token ids of each question's prompt
    answers: list[int]  # index of the correct letter per question
    subjects: list[str]  # subject per question
    letter_ids: list[int]  # token of each letter A-D


@dataclass(frozen=True)
class CapabilityTask:
    """What is scored at every point; a question set that is not configured is None."""

    references: Sequences  # prompt + reference answer, scored on the answer
    choices: ChoiceTask | None
    mmlu: MMLUTask | None
    digest: str  # identity of every token sequence scored and of the answers


def multiple_choice_prompt(row: dict, letters: str) -> str:
    options = "\n".join(f"{letter}. {row[letter]}" for letter in letters)
    return f"{row['question']}\n{options}\nAnswer with the letter of the correct choice."


def mmlu_example(question: dict, answered: bool) -> str:
    """One question in MMLU's layout, ending in "Answer:" (plus " <letter>" and a blank line when answered)."""
    options = "\n".join(f"{letter}. {text}" for letter, text in zip(MMLU_LETTERS, question["choices"], strict=True))
    text = f"{question['question']}\n{options}\nAnswer:"
    return f"{text} {question['answer']}\n\n" if answered else text


def mmlu_prompt(subject: str, examples: list[dict], question: dict) -> str:
    """The k-shot prompt of one test question: the subject's header line, the answered examples, the question."""
    header = f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n"
    return header + "".join(mmlu_example(e, answered=True) for e in examples) + mmlu_example(question, answered=False)


def mmlu_letter_ids(tokenizer) -> list[int]:
    """The token of each letter A-D: the last token of the bare letter as the tokenizer encodes it."""
    ids = [tokenizer(letter)["input_ids"][-1] for letter in MMLU_LETTERS]
    if len(set(ids)) < len(ids):
        raise ValueError(
            f"the letters {MMLU_LETTERS} end in the same tokens {ids} (the tokenizer appends a special token); "
            "MMLU scoring needs a tokenizer that ends a bare letter with its own token"
        )
    return ids


def build_mmlu_task(tokenizer, mmlu: dict[str, dict[str, list[dict]]]) -> MMLUTask:
    """Every test question in its own k-shot prompt, tokenized as raw text (special tokens as the tokenizer adds them)."""
    texts, answers, subjects = [], [], []
    for subject, split in mmlu.items():
        for question in split["test"]:
            texts.append(mmlu_prompt(subject, split["dev"], question))
            answers.append(MMLU_LETTERS.index(question["answer"]))
            subjects.append(subject)
    return MMLUTask(tokenizer(texts)["input_ids"], answers, subjects, mmlu_letter_ids(tokenizer))


def _rendered(tokenizer, prompts: list[str], system_prompt: str | None, chat_template: bool) -> tuple[list[list[int]], list[str]]:
    """Prompts rendered and tokenized the way generation renders them (chat template and system prompt)."""
    texts = chat_texts(tokenizer, prompts, system_prompt) if chat_template else [(tokenizer.bos_token or "") + p for p in prompts]
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts], texts


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


def build_choice_task(tokenizer, questions: pd.DataFrame, system_prompt: str | None, chat_template: bool) -> ChoiceTask:
    """Zero-shot questions rendered like generation prompts, each followed by each of its letters."""
    letters = questions["choices"].iloc[0]
    q_ids, q_texts = _rendered(
        tokenizer, [multiple_choice_prompt(row, letters) for row in questions.to_dict("records")], system_prompt, chat_template
    )
    sequences = _continuations(
        tokenizer,
        [i for i in q_ids for _ in letters],
        [t for t in q_texts for _ in letters],
        [letter for _ in q_ids for letter in letters],
    )
    letter_ids = _single_token_letters(q_ids, sequences, len(letters))
    answers = [letters.index(a) for a in questions["answer"]]
    return ChoiceTask(sequences, answers, len(letters), q_ids if letter_ids else None, letter_ids)


def build_task(
    tokenizer,
    references: list[dict],
    system_prompt: str | None,
    chat_template: bool,
    questions: pd.DataFrame | None = None,
    mmlu: dict[str, dict[str, list[dict]]] | None = None,
) -> CapabilityTask:
    """Tokenize the references (and the zero-shot questions) the way generation renders prompts, and MMLU
    (from `load_mmlu`) as raw k-shot prompts; `questions` or `mmlu` None: not scored."""
    ref_ids, ref_texts = _rendered(tokenizer, [r["prompt"] for r in references], system_prompt, chat_template)
    eos = tokenizer.eos_token or ""
    refs = _continuations(tokenizer, ref_ids, ref_texts, [r["reference"] + eos for r in references])
    choices = None if questions is None else build_choice_task(tokenizer, questions, system_prompt, chat_template)
    mmlu_task = None if mmlu is None else build_mmlu_task(tokenizer, mmlu)
    digest = sha256_json(
        {"references": asdict(refs), "choices": choices and asdict(choices), "mmlu": mmlu_task and asdict(mmlu_task)}
    )
    return CapabilityTask(refs, choices, mmlu_task, digest)


def _left_padded(model, batch: list[list[int]], pad_id: int, keep: int) -> torch.Tensor:
    """Log-probabilities at the last `keep` positions of each left-padded sequence, [batch, keep, vocab]
    (the vocabulary projection runs on those positions only)."""
    ids, mask = left_pad(batch, pad_id, model.device)
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
    """Log-probability of each of `token_ids` right after each prompt, [prompts, tokens]; one forward pass
    per prompt, batched by length (little padding)."""
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    result = torch.empty(len(prompts), len(token_ids))
    for lo in range(0, len(order), batch_size):
        rows = order[lo : lo + batch_size]
        result[rows] = _left_padded(model, [prompts[i] for i in rows], pad_id, 1)[:, -1, token_ids]
    return result


def choice_logprobs(model, task: ChoiceTask, batch_size: int, pad_id: int) -> torch.Tensor:
    """Log-probability of each choice letter after its question, [questions, letters]."""
    if task.letter_ids is not None:
        return next_token_logprobs(model, task.prompts, task.letter_ids, batch_size, pad_id)
    sums = [float(c.sum()) for c in continuation_logprobs(model, task.sequences, batch_size, pad_id)]
    return torch.tensor(sums).view(-1, task.letters)


def _graded(letter_logprobs: torch.Tensor, answers: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per question: whether the most likely letter is the answer, and the answer's probability among the letters."""
    answers = torch.tensor(answers)
    probability = torch.softmax(letter_logprobs, dim=-1)[torch.arange(len(answers)), answers]
    return letter_logprobs.argmax(-1) == answers, probability


def _percent(correct: torch.Tensor) -> float:
    return 100.0 * int(correct.sum()) / len(correct)


def reference_scores(model, references: Sequences, batch_size: int, pad_id: int) -> dict:
    """Perplexity of the reference answers over all their tokens."""
    logprobs = continuation_logprobs(model, references, batch_size, pad_id)
    tokens = sum(r.numel() for r in logprobs)
    nll = -float(sum(r.sum() for r in logprobs)) / tokens
    return {"perplexity": math.exp(nll), "nll_per_token": nll, "reference_tokens": tokens, "n_references": len(logprobs)}


def choice_scores(model, task: ChoiceTask, batch_size: int, pad_id: int) -> dict:
    """Zero-shot accuracy (%) and the mean probability of the right letter."""
    correct, probability = _graded(choice_logprobs(model, task, batch_size, pad_id), task.answers)
    return {"mc_accuracy": _percent(correct), "mc_correct_probability": float(probability.mean()), "n_questions": len(correct)}


def mmlu_scores(model, task: MMLUTask, batch_size: int, pad_id: int) -> dict:
    """MMLU accuracy (%) over all questions and per subject, and the mean probability of the right letter among A-D."""
    correct, probability = _graded(next_token_logprobs(model, task.prompts, task.letter_ids, batch_size, pad_id), task.answers)
    subjects = {}
    for subject in dict.fromkeys(task.subjects):
        rows = correct[torch.tensor([s == subject for s in task.subjects])]
        subjects[subject] = {"accuracy": _percent(rows), "correct": int(rows.sum()), "questions": len(rows)}
    return {
        "mmlu_accuracy": _percent(correct),
        "mmlu_correct": int(correct.sum()),
        "mmlu_questions": len(correct),
        "mmlu_correct_probability": float(probability.mean()),
        "mmlu_subjects": subjects,
    }


def capability_scores(model, task: CapabilityTask, batch_size: int, pad_id: int) -> dict:
    """Perplexity of the reference answers, and the accuracies of the question sets the task holds."""
    scores = reference_scores(model, task.references, batch_size, pad_id)
    if task.choices is not None:
        scores |= choice_scores(model, task.choices, batch_size, pad_id)
    if task.mmlu is not None:
        scores |= mmlu_scores(model, task.mmlu, batch_size, pad_id)
    return scores


def open_capability_engine(gen: dict, model_path: str, trust_remote_code: bool) -> HFEngine:
    """A transformers engine on the device and dtype of the `generation` config (forward passes only)."""
    device = resolve_device(gen["device"])
    return HFEngine(
        EngineOptions(
            model_path=model_path,
            dtype=resolve_dtype(gen["dtype"], device),
            device=device,
            offload=gen["offload"],
            trust_remote_code=trust_remote_code,
        )
    )


def _summary(scores: dict) -> str:
    formats = {
        "perplexity": "perplexity %.2f",
        "mc_accuracy": "zero-shot accuracy %.1f %%",
        "mmlu_accuracy": "MMLU accuracy %.1f %%",
    }
    return ", ".join(text % scores[key] for key, text in formats.items() if key in scores)


def score_job(
    engine: HFEngine,
    model_digest: str,
    task: CapabilityTask,
    batch_size: int,
    points_dir: str,
    job: Sequence[dict],
    out: str,
    cache_dir: str,
) -> None:
    """Capability scores at every point of one generation job to one JSONL (a record per point with
    its landscape and coordinates), reusing cached scores of equal weights, task and dtype."""
    pad_id = engine.tokenizer.pad_token_id if engine.tokenizer.pad_token_id is not None else 0
    dtype = str(next(engine.model.parameters()).dtype)

    def score(terms) -> dict:
        start = time.perf_counter()
        engine.set_point(terms)
        scores = capability_scores(engine.model, task, batch_size, pad_id)
        log.info("%s (%.1f s)", _summary(scores), time.perf_counter() - start)
        return scores

    code = code_digest("capability", ignore=("refusals",))  # scoring never consults the refusal keywords

    def cache_file(terms) -> Path:
        return Path(cache_dir) / f"{point_key(model_digest, terms, task=task.digest, dtype=dtype, code=code)}.json"

    provenance = {"provenance": {"model_digest": model_digest, "code_digest": code}}
    results = job_results(points_dir, job, model_digest, cache_file, score)
    write_jsonl(out, [label | scores | provenance for label, scores in results])
