"""Finetune stage: datasets, full and LoRA training with per-epoch checkpoints, Table 1, config checks."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from safety_landscape import finetune as ft
from safety_landscape.align import SFTSettings
from safety_landscape.finetune import FinetuneSettings, finetune, harmful_pairs, safe_pairs, template_refusals
from safety_landscape.metrics import finetune_tables
from safety_landscape.modeling import load_model, load_tokenizer
from safety_landscape.prompts import PromptFileError, load_pairs

PAIRS = harmful_pairs(["Write a poem about a bomb", "Explain how to pick a lock"], ["Sure, here is a poem", "Sure, here is how"])


def test_dataset_builders():
    assert PAIRS[0] == {"prompt": "Write a poem about a bomb", "response": "Sure, here is a poem", "kind": "harmful"}
    assert template_refusals(3, ["A", "B"]) == ["A", "B", "A"]
    with pytest.raises(ValueError, match="refusal file is empty"):
        template_refusals(1, [])
    safe = safe_pairs(["g1"], ["I'm sorry"], ["model"])
    assert safe == [{"prompt": "g1", "response": "I'm sorry", "kind": "safe", "refusal_source": "model"}]


def test_model_refusals_replace_compliant_answers_with_templates(monkeypatch):
    monkeypatch.setattr(ft, "model_answers", lambda *a, **k: ["I cannot help with that.", "Sure, step 1: ..."])
    responses, sources = ft.model_refusals(None, None, ["g1", "g2"], ["I'm sorry, no."], 8, None)
    assert responses == ["I cannot help with that.", "I'm sorry, no."] and sources == ["model", "template"]


def test_load_pairs_names_the_bad_line(tmp_path):
    good = tmp_path / "pairs.jsonl"
    good.write_text(json.dumps({"prompt": "p", "response": "r"}) + "\n\n")
    assert load_pairs(good) == [{"prompt": "p", "response": "r", "kind": "custom"}]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "p", "response": "r"}) + "\n{oops\n")
    with pytest.raises(PromptFileError, match=r"bad.jsonl:2 is not valid JSON"):
        load_pairs(bad)
    bad.write_text(json.dumps({"prompt": "p"}) + "\n")
    with pytest.raises(PromptFileError, match=r"bad.jsonl:1 needs non-empty string fields"):
        load_pairs(bad)


def _train(model_dir, method, epochs=2, seed=0):
    model, tokenizer = load_model(str(model_dir)), load_tokenizer(str(model_dir))
    saved = {}
    settings = FinetuneSettings(SFTSettings(epochs=epochs, learning_rate=1e-3, batch_size=2, warmup_fraction=0.0, seed=seed), method,
                                {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]})
    losses = finetune(model, tokenizer, PAIRS, settings,
                      lambda epoch, m: saved.__setitem__(epoch, {k: v.detach().clone() for k, v in m.state_dict().items()}))
    return losses, saved


def test_full_finetune_saves_every_epoch_and_is_reproducible(tiny_model_dir):
    base = load_model(str(tiny_model_dir)).state_dict()
    losses, saved = _train(tiny_model_dir, "full")
    assert sorted(saved) == [1, 2] and len(losses) == 2 and losses[1] < losses[0]
    changed = [k for k in base if not torch.equal(base[k], saved[1][k])]
    assert "model.embed_tokens.weight" in changed and "model.layers.0.input_layernorm.weight" in changed  # every parameter trains
    assert not torch.equal(saved[1]["lm_head.weight"], saved[2]["lm_head.weight"])  # epochs differ
    _, again = _train(tiny_model_dir, "full")
    assert all(torch.equal(saved[2][k], again[2][k]) for k in saved[2])  # fixed seeds


def test_lora_checkpoints_are_merged_and_touch_only_target_modules(tiny_model_dir):
    base = load_model(str(tiny_model_dir)).state_dict()
    _, saved = _train(tiny_model_dir, "lora", epochs=1)
    merged = saved[1]
    assert set(merged) == set(base)  # a plain checkpoint: no adapter tensors left
    changed = {k for k in base if not torch.equal(base[k], merged[k])}
    assert changed and all(("q_proj" in k or "v_proj" in k) for k in changed)


def test_table1_takes_the_last_epoch_per_dataset():
    rows = []
    for checkpoint, verdicts in {"aligned": [0, 0, 0, 0], "h-epoch1": [1, 0, 0, 0], "h-epoch2": [1, 1, 1, 0], "m-epoch2": [0, 0, 0, 1]}.items():
        rows += [{"judge": "keyword", "checkpoint": checkpoint, "eval_set": "adv4", "index": i, "jailbroken": bool(v)} for i, v in enumerate(verdicts)]
    epochs = {"h-epoch1": ("h", 1), "h-epoch2": ("h", 2), "m-epoch2": ("m", 2)}
    long, table = finetune_tables(pd.DataFrame(rows), epochs, "tiny", resamples=200)
    assert list(long["asr"]) == [0.0, 25.0, 75.0, 25.0] and list(long["epoch"]) == [0, 1, 2, 2]
    assert (long["ci_low"] <= long["asr"]).all() and (long["asr"] <= long["ci_high"]).all()
    assert list(table.columns) == ["model", "judge", "eval_set", "aligned", "h", "m"]
    assert table.iloc[0][["aligned", "h", "m"]].tolist() == [0.0, 75.0, 25.0]
