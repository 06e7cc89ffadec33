"""Capability scores: perplexity and multiple-choice accuracy equal unbatched references, at the point's weights."""

import math

import pandas as pd
import pytest
import torch

from conftest import REPO
from safety_landscape.capability import build_task, capability_scores, open_capability_engine, score_points
from safety_landscape.directions import CheckpointReader, Direction, random_source, write_direction
from safety_landscape.engine import chat_texts
from safety_landscape.io import read_json
from safety_landscape.points import Term, write_point
from safety_landscape.prompts import load_multiple_choice, load_references

REFERENCES = [{"prompt": "Name a colour.", "reference": "Blue is a colour."},
              {"prompt": "What is two plus two?", "reference": "Two plus two is four, a small even number."},
              {"prompt": "Say hello.", "reference": "Hello!"}]
QUESTIONS = pd.DataFrame({"question": ["Which is a fruit?", "Which is a number?"], "A": ["apple", "red"], "B": ["chair", "seven"],
                          "C": ["road", "cat"], "answer": ["A", "B"], "choices": ["ABC", "ABC"]})


def unbatched_logprob(model, ids: list[int], start: int) -> float:
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    logprobs = torch.log_softmax(logits[:-1], -1).gather(-1, torch.tensor(ids[1:])[:, None]).squeeze(-1)
    return float(logprobs[start - 1 :].sum())


def test_scores_equal_unbatched_computation(tiny_model):
    model, tokenizer = tiny_model
    task = build_task(tokenizer, REFERENCES, QUESTIONS, "Be brief.", True)
    prompts = chat_texts(tokenizer, [r["prompt"] for r in REFERENCES], "Be brief.")
    for ids, start, prompt, ref in zip(task.references.ids, task.references.start, prompts, REFERENCES):
        # scored: exactly the reference answer and the end of the turn, after the rendered prompt
        assert tokenizer.decode(ids[:start]) == prompt and tokenizer.decode(ids[start:]) == ref["reference"] + tokenizer.eos_token
    scores = capability_scores(model, task, batch_size=2, pad_id=tokenizer.pad_token_id)
    total = sum(unbatched_logprob(model, ids, s) for ids, s in zip(task.references.ids, task.references.start))
    tokens = sum(len(ids) - s for ids, s in zip(task.references.ids, task.references.start))
    assert scores["reference_tokens"] == tokens and scores["perplexity"] == pytest.approx(math.exp(-total / tokens), rel=1e-4)
    choice = torch.tensor([unbatched_logprob(model, ids, s) for ids, s in zip(task.choices.ids, task.choices.start)]).view(2, 3)
    assert [tokenizer.decode(ids[s:]) for ids, s in zip(task.choices.ids[:3], task.choices.start[:3])] == ["A", "B", "C"]
    expected = 100 * float((choice.argmax(-1) == torch.tensor([0, 1])).float().mean())
    assert scores["mc_accuracy"] == pytest.approx(expected) and scores["n_questions"] == 2
    assert scores["mc_correct_probability"] == pytest.approx(float(torch.softmax(choice, -1)[[0, 1], [0, 1]].mean()), rel=1e-4)


def test_shipped_sets_build_a_task(tiny_model):
    _, tokenizer = tiny_model
    task = build_task(tokenizer, load_references(REPO / "data/capability/benign_qa.jsonl"),
                      load_multiple_choice(REPO / "data/capability/mc_questions.csv"), None, True)
    assert len(task.references.ids) == 40 and len(task.choices.ids) == 60 * 4 and task.letters == 4
    assert sorted(set(task.answers)) == [0, 1, 2, 3]


def test_points_are_scored_at_their_weights_and_cached(tiny_model_dir, tmp_path, caplog):
    write_direction(tmp_path / "d1", CheckpointReader(tiny_model_dir), random_source(0, "layer"), ["norm"], torch.float32, 1 << 20, {"name": "d1"})
    direction = Direction(tmp_path / "d1")
    points = []
    for a in (0.0, 0.5, 0.0):
        points.append(tmp_path / f"p{len(points)}.safetensors")
        write_point(points[-1], [Term(str(direction.folder), direction.digest, a)], "m", "factored")
    gen = {"device": "cpu", "dtype": "float32", "offload": "none"}
    engine = open_capability_engine(gen, str(tiny_model_dir), False)
    task = build_task(engine.tokenizer, REFERENCES, QUESTIONS, None, True)
    outputs = [tmp_path / f"out{i}.json" for i in range(3)]
    labels = [{"landscape": "d1", "a": a} for a in (0.0, 0.5, 0.0)]
    with caplog.at_level("INFO"):
        score_points(engine, "m", task, 2, points, outputs, tmp_path / "cache", labels)
    first, perturbed, again = (read_json(o) for o in outputs)
    assert first["a"] == 0.0 and perturbed["a"] == 0.5 and perturbed["perplexity"] != pytest.approx(first["perplexity"])
    assert again == first and caplog.text.count("reusing cached scores") == 1
    assert len(list((tmp_path / "cache").glob("*.json"))) == 2
    with pytest.raises(ValueError, match="made for another model"):
        score_points(engine, "other", task, 2, points[:1], outputs[:1], tmp_path / "cache", labels[:1])
