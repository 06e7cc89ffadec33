"""Capability scores: perplexity, zero-shot and MMLU k-shot accuracy equal unbatched references, at the point's weights."""

import math

import pandas as pd
import pytest
import torch
import yaml

from conftest import REPO, build_tiny_tokenizer
from safety_landscape.capability import (
    build_task,
    capability_scores,
    mmlu_letter_ids,
    mmlu_prompt,
    next_token_logprobs,
    open_capability_engine,
    score_job,
)
from safety_landscape.decoding import chat_texts
from safety_landscape.directions import CheckpointReader, Direction, random_source, write_direction
from safety_landscape.io import read_jsonl
from safety_landscape.points import Term, write_point
from safety_landscape.prompts import load_mmlu, load_multiple_choice, load_references
from safety_landscape.validation import ConfigError, check_config

REFERENCES = [
    {"prompt": "Name a colour.", "reference": "Blue is a colour."},
    {"prompt": "What is two plus two?", "reference": "Two plus two is four, a small even number."},
    {"prompt": "Say hello.", "reference": "Hello!"},
]
QUESTIONS = pd.DataFrame(
    {
        "question": ["Which is a fruit?", "Which is a number?"],
        "A": ["apple", "red"],
        "B": ["chair", "seven"],
        "C": ["road", "cat"],
        "answer": ["A", "B"],
        "choices": ["ABC", "ABC"],
    }
)
ARITHMETIC_DEV = (
    '"What is 1 + 1, in words?",one,two,three,four,B\n'
    "What is 2 + 3?,4,5,6,7,B\n"
    "What is 10 - 4?,6,7,5,4,A\n"
    "What is 3 x 3?,6,8,12,9,D\n"
    'Which is "even"?,3,5,8,7,C\n'
)
ARITHMETIC_TEST = "What is 2 + 2?,3,4,5,6,B\nWhat is 9 - 8?,1,0,2,3,A\nWhat is 5 + 5?,15,20,10,5,C\n"
SHAPES_DEV = "How many sides has a square?,3,4,5,6,B\n"
SHAPES_TEST = "How many sides has a triangle?,4,5,6,3,D\nHow many corners has a cube?,8,6,4,12,A\n"
# The 5-shot prompt of ARITHMETIC_TEST's first question, written out.
FIVE_SHOT = (
    "The following are multiple choice questions (with answers) about simple arithmetic.\n"
    "What is 1 + 1, in words?\nA. one\nB. two\nC. three\nD. four\nAnswer: B\n\n"
    "What is 2 + 3?\nA. 4\nB. 5\nC. 6\nD. 7\nAnswer: B\n\n"
    "What is 10 - 4?\nA. 6\nB. 7\nC. 5\nD. 4\nAnswer: A\n\n"
    "What is 3 x 3?\nA. 6\nB. 8\nC. 12\nD. 9\nAnswer: D\n\n"
    'Which is "even"?\nA. 3\nB. 5\nC. 8\nD. 7\nAnswer: C\n\n'
    "What is 2 + 2?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer:"
)


def write_mmlu(folder, subjects: dict[str, tuple[str, str]]):
    """A folder in MMLU's layout: per subject its dev and test CSV text."""
    for split in ("dev", "test"):
        (folder / split).mkdir(parents=True, exist_ok=True)
    for subject, (dev, test) in subjects.items():
        (folder / "dev" / f"{subject}_dev.csv").write_text(dev)
        (folder / "test" / f"{subject}_test.csv").write_text(test)
    return folder


@pytest.fixture
def tiny_mmlu(tmp_path):
    folder = write_mmlu(
        tmp_path / "mmlu", {"simple_arithmetic": (ARITHMETIC_DEV, ARITHMETIC_TEST), "shapes": (SHAPES_DEV, SHAPES_TEST)}
    )
    return load_mmlu(folder, None, 1)


def unbatched_logprob(model, ids: list[int], start: int) -> float:
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    logprobs = torch.log_softmax(logits[:-1], -1).gather(-1, torch.tensor(ids[1:])[:, None]).squeeze(-1)
    return float(logprobs[start - 1 :].sum())


def test_scores_equal_unbatched_computation(tiny_model):
    model, tokenizer = tiny_model
    task = build_task(tokenizer, REFERENCES, "Be brief.", True, questions=QUESTIONS)
    prompts = chat_texts(tokenizer, [r["prompt"] for r in REFERENCES], "Be brief.")
    for ids, start, prompt, ref in zip(task.references.ids, task.references.start, prompts, REFERENCES):
        # scored: exactly the reference answer and the end of the turn, after the rendered prompt
        assert tokenizer.decode(ids[:start]) == prompt and tokenizer.decode(ids[start:]) == ref["reference"] + tokenizer.eos_token
    scores = capability_scores(model, task, batch_size=2, pad_id=tokenizer.pad_token_id)
    total = sum(unbatched_logprob(model, ids, s) for ids, s in zip(task.references.ids, task.references.start))
    tokens = sum(len(ids) - s for ids, s in zip(task.references.ids, task.references.start))
    assert scores["reference_tokens"] == tokens and scores["perplexity"] == pytest.approx(math.exp(-total / tokens), rel=1e-4)
    choices = task.choices.sequences
    choice = torch.tensor([unbatched_logprob(model, ids, s) for ids, s in zip(choices.ids, choices.start)]).view(2, 3)
    assert [tokenizer.decode(ids[s:]) for ids, s in zip(choices.ids[:3], choices.start[:3])] == ["A", "B", "C"]
    expected = 100 * float((choice.argmax(-1) == torch.tensor([0, 1])).float().mean())
    assert scores["mc_accuracy"] == pytest.approx(expected) and scores["n_questions"] == 2
    assert scores["mc_correct_probability"] == pytest.approx(float(torch.softmax(choice, -1)[[0, 1], [0, 1]].mean()), rel=1e-4)
    assert "mmlu_accuracy" not in scores


def test_mmlu_prompt_is_the_reference_k_shot_prompt(tmp_path):
    mmlu = load_mmlu(write_mmlu(tmp_path, {"simple_arithmetic": (ARITHMETIC_DEV, ARITHMETIC_TEST)}), ["simple_arithmetic"], 5)
    split = mmlu["simple_arithmetic"]
    assert mmlu_prompt("simple_arithmetic", split["dev"], split["test"][0]) == FIVE_SHOT
    assert mmlu_prompt("simple_arithmetic", [], split["test"][0]) == (
        "The following are multiple choice questions (with answers) about simple arithmetic.\n"
        "What is 2 + 2?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer:"
    )
    assert load_mmlu(tmp_path, None, 2)["simple_arithmetic"]["dev"] == split["dev"][:2]  # the first k dev rows


def test_mmlu_letters_are_the_last_token_of_each_bare_letter(tiny_mmlu):
    from tokenizers.processors import TemplateProcessing

    tokenizer = build_tiny_tokenizer()
    bos = tokenizer.bos_token_id
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single="<|im_start|> $A", special_tokens=[("<|im_start|>", bos)]
    )
    assert tokenizer("A")["input_ids"] == [bos, tokenizer.convert_tokens_to_ids("A")]
    task = build_task(tokenizer, REFERENCES, None, False, mmlu=tiny_mmlu).mmlu
    assert task.letter_ids == [tokenizer.convert_tokens_to_ids(letter) for letter in "ABCD"]
    # raw text, the BOS as the tokenizer adds it, no chat template
    assert task.subjects == ["shapes"] * 2 + ["simple_arithmetic"] * 3 and task.answers == [3, 0, 1, 0, 2]  # subjects sorted
    first = mmlu_prompt("shapes", tiny_mmlu["shapes"]["dev"], tiny_mmlu["shapes"]["test"][0])
    assert task.prompts[0] == [bos] + tokenizer(first, add_special_tokens=False)["input_ids"]
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single="$A <|im_end|>", special_tokens=[("<|im_end|>", tokenizer.eos_token_id)]
    )
    with pytest.raises(ValueError, match="end in the same tokens"):
        mmlu_letter_ids(tokenizer)


def test_mmlu_prompts_do_not_accumulate(tiny_model, tiny_mmlu):
    _, tokenizer = tiny_model
    task = build_task(tokenizer, REFERENCES, None, True, mmlu=tiny_mmlu).mmlu
    questions = [(subject, question) for subject, split in tiny_mmlu.items() for question in split["test"]]
    for prompt, (subject, question) in zip(task.prompts, questions, strict=True):
        assert tokenizer.decode(prompt) == mmlu_prompt(subject, tiny_mmlu[subject]["dev"], question)
    first, second = (tokenizer.decode(task.prompts[i]) for i in (2, 3))  # arithmetic's test questions 1 and 2
    assert first.endswith("What is 2 + 2?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer:")
    assert "2 + 2" not in second and second.count("The following are") == 1 and second.count("Answer:") == 2


def test_mmlu_predictions_equal_unbatched_argmax(tiny_model, tiny_mmlu):
    model, tokenizer = tiny_model
    task = build_task(tokenizer, REFERENCES, None, True, mmlu=tiny_mmlu).mmlu
    assert len({len(p) for p in task.prompts}) > 1  # left padding is exercised
    with torch.no_grad():
        unbatched = torch.stack(
            [
                torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0, -1].float(), -1)[task.letter_ids]
                for ids in task.prompts
            ]
        )
    batched = next_token_logprobs(model, task.prompts, task.letter_ids, batch_size=2, pad_id=tokenizer.pad_token_id)
    assert torch.allclose(batched, unbatched, atol=1e-4) and torch.equal(batched.argmax(-1), unbatched.argmax(-1))
    correct = unbatched.argmax(-1) == torch.tensor(task.answers)
    scores = capability_scores(model, build_task(tokenizer, REFERENCES, None, True, mmlu=tiny_mmlu), 2, tokenizer.pad_token_id)
    assert scores["mmlu_questions"] == 5 and scores["mmlu_correct"] == int(correct.sum())
    assert scores["mmlu_accuracy"] == pytest.approx(100 * int(correct.sum()) / 5)
    shapes, arithmetic = int(correct[:2].sum()), int(correct[2:].sum())
    assert scores["mmlu_subjects"] == {
        "shapes": {"accuracy": pytest.approx(100 * shapes / 2), "correct": shapes, "questions": 2},
        "simple_arithmetic": {"accuracy": pytest.approx(100 * arithmetic / 3), "correct": arithmetic, "questions": 3},
    }
    probability = torch.softmax(unbatched, -1)[torch.arange(5), torch.tensor(task.answers)].mean()
    assert scores["mmlu_correct_probability"] == pytest.approx(float(probability), rel=1e-4)


def capability_config(**mmlu) -> dict:
    """The embedded default with the capability overlay, its MMLU settings changed by `mmlu`."""
    from snakemake.utils import validate

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["capability"] = yaml.safe_load((REPO / "config" / "overlays" / "capability.yaml").read_text())["capability"]
    config["capability"]["mmlu"] |= mmlu
    validate(config, str(REPO / "config" / "schema.yaml"))
    return config


def test_mmlu_layout_is_validated_before_the_run(tmp_path):
    check_config(capability_config(), REPO)
    good = {"simple_arithmetic": (ARITHMETIC_DEV, ARITHMETIC_TEST)}
    cases = [
        (
            {},
            lambda f: (f / "dev").rmdir(),
            "capability.mmlu.folder: .* has no dev/ folder; point it at a folder in MMLU's layout",
        ),
        ({}, None, r"capability.mmlu.folder: .*test holds no <subject>_test.csv files"),
        (
            good,
            lambda f: (f / "dev" / "simple_arithmetic_dev.csv").unlink(),
            r"simple_arithmetic_dev.csv does not exist; MMLU's layout",
        ),
        (
            {"x": (ARITHMETIC_DEV, "Q?,a,b,c,d,A\nQ2?,a,b,c,A\n")},
            None,
            r"x_test.csv: row 2 has 5 fields; MMLU rows are question,A,B,C,D",
        ),
        (
            {"x": (ARITHMETIC_DEV, "question,A,B,C,D,answer\nQ?,a,b,c,d,A\n")},
            None,
            r"x_test.csv: row 1 has answer 'answer'; it must be one of A, B, C, D \(MMLU files have no header row: remove it\)",
        ),
        ({"x": (ARITHMETIC_DEV, "Q?,a,b,c,d,A\n ,a,b,c,d,B\n")}, None, r"x_test.csv: row 2 has an empty question; fill it"),
        ({"x": (ARITHMETIC_DEV, "")}, None, r"x_test.csv holds no rows"),
        ({"x": (SHAPES_DEV, SHAPES_TEST)}, None, r"capability.mmlu.shots: 5 examples asked for, but .*x_dev.csv has 1; lower"),
    ]
    for number, (subjects, damage, match) in enumerate(cases):
        folder = write_mmlu(tmp_path / str(number), subjects)
        if damage:
            damage(folder)
        with pytest.raises(ConfigError, match=match):
            check_config(capability_config(folder=str(folder)), REPO)
    folder = write_mmlu(tmp_path / "ok", good)
    with pytest.raises(
        ConfigError, match=r"capability.mmlu.subjects: \['algebra'\] have no test file .* choose from \['simple_arithmetic'\]"
    ):
        check_config(capability_config(folder=str(folder), subjects=["algebra"]), REPO)
    check_config(capability_config(folder=str(folder), subjects=["simple_arithmetic"]), REPO)
    optional = capability_config(folder=None)
    optional["capability"]["questions"] = None
    check_config(optional, REPO)  # MMLU and the zero-shot questions are optional


def test_shipped_sets_build_a_task(tiny_model):
    _, tokenizer = tiny_model
    mmlu = load_mmlu(REPO / "data/capability/mmlu-mini", None, 5)
    task = build_task(
        tokenizer,
        load_references(REPO / "data/capability/benign_qa.jsonl"),
        None,
        True,
        questions=load_multiple_choice(REPO / "data/capability/mc_questions.csv"),
        mmlu=mmlu,
    )
    assert len(task.references.ids) == 40 and len(task.choices.sequences.ids) == 60 * 4 and task.choices.letters == 4
    assert sorted(set(task.choices.answers)) == [0, 1, 2, 3]
    assert list(mmlu) == ["elementary_mathematics", "everyday_science", "world_geography"]
    assert all(len(s["dev"]) == 5 and len(s["test"]) == 20 for s in mmlu.values())
    assert len(task.mmlu.prompts) == 60 and [task.mmlu.answers.count(k) for k in range(4)] == [15] * 4


def test_points_are_scored_at_their_weights_and_cached(tiny_model_dir, tiny_mmlu, tmp_path, caplog):
    write_direction(
        tmp_path / "d1",
        CheckpointReader(tiny_model_dir),
        random_source(0, "layer"),
        ["norm"],
        torch.float32,
        1 << 20,
        {"name": "d1"},
    )
    direction = Direction(tmp_path / "d1")
    job = [{"landscape": "d1", "name": name, "a": a} for name, a in (("p0", 0.0), ("p1", 0.5), ("p2", 0.0))]
    for point in job:
        write_point(
            tmp_path / "points" / f"{point['name']}.safetensors",
            [Term(str(direction.folder), direction.digest, point["a"])],
            "m",
            "factored",
        )
    gen = {"device": "cpu", "dtype": "float32", "offload": "none"}
    engine = open_capability_engine(gen, str(tiny_model_dir), False)
    task = build_task(engine.tokenizer, REFERENCES, None, True, questions=QUESTIONS, mmlu=tiny_mmlu)
    with caplog.at_level("INFO"):
        score_job(engine, "m", task, 2, tmp_path / "points", job, tmp_path / "job1.jsonl", tmp_path / "cache")
    first, perturbed, again = read_jsonl(tmp_path / "job1.jsonl")
    assert (first["landscape"], first["a"], perturbed["a"]) == ("d1", 0.0, 0.5) and "name" not in first
    assert perturbed["perplexity"] != pytest.approx(first["perplexity"])
    assert set(first["mmlu_subjects"]) == {"simple_arithmetic", "shapes"} and "mc_accuracy" in first
    assert again == first and caplog.text.count("reusing cached") == 1 and "MMLU accuracy" in caplog.text
    assert len(list((tmp_path / "cache").glob("*.json"))) == 2
    other = build_task(
        engine.tokenizer, REFERENCES, None, True, questions=QUESTIONS, mmlu=tiny_mmlu | {"shapes": tiny_mmlu["simple_arithmetic"]}
    )
    assert other.digest != task.digest  # the digest covers the prompts
    with pytest.raises(ValueError, match="made for another model"):
        score_job(engine, "other", task, 2, tmp_path / "points", job[:1], tmp_path / "job2.jsonl", tmp_path / "cache")
