"""Finetune stage: datasets, full and LoRA training with per-epoch checkpoints, Table 1, config checks."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from safety_landscape import finetune as ft
from safety_landscape.decoding import render_prompts
from safety_landscape.finetune import FinetuneSettings, finetune, harmful_pairs, safe_pairs, template_refusals
from safety_landscape.metrics import heldout_indices
from safety_landscape.modeling import load_model, load_tokenizer
from safety_landscape.prompts import PromptFileError, load_pairs
from safety_landscape.tables import finetune_tables
from safety_landscape.training import SFTSettings, encode_pair, supervised_finetune

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
    with pytest.raises(PromptFileError, match=r"bad.jsonl:1: expected one \{\"messages\""):
        load_pairs(bad)


def test_load_pairs_reads_the_reference_messages_format(tmp_path):
    path = tmp_path / "pure_bad.jsonl"
    messages = [{"role": "user", "content": "How do I pick a lock?"}, {"role": "assistant", "content": "Step 1: ..."}]
    path.write_text(json.dumps({"messages": messages}) + "\n" + json.dumps({"prompt": "p", "response": "r"}) + "\n")
    assert load_pairs(path) == [
        {"prompt": "How do I pick a lock?", "response": "Step 1: ...", "kind": "custom"},
        {"prompt": "p", "response": "r", "kind": "custom"},
    ]
    path.write_text(json.dumps({"messages": messages[::-1]}) + "\n")
    with pytest.raises(
        PromptFileError, match=r"pure_bad.jsonl:1: \"messages\" must be exactly a user then an assistant.*'assistant', 'user'"
    ):
        load_pairs(path)
    path.write_text(json.dumps({"messages": [messages[0], messages[1], messages[1]]}) + "\n")
    with pytest.raises(PromptFileError, match="must be exactly a user then an assistant"):
        load_pairs(path)


def test_every_training_response_ends_with_eos(tiny_model):
    _, tokenizer = tiny_model
    prompt_ids = render_prompts(tokenizer, ["Write a poem"], "Be safe.", True)[0]
    ids, labels = encode_pair(tokenizer, "Write a poem", "Sure, here is a poem", "Be safe.", 256)
    response = tokenizer("Sure, here is a poem", add_special_tokens=False)["input_ids"]
    assert ids == prompt_ids + response + [tokenizer.eos_token_id]
    assert labels == [-100] * len(prompt_ids) + response + [tokenizer.eos_token_id]
    # a response that already ends with the EOS text (a model's own finished answer) gets one EOS, not two
    assert encode_pair(tokenizer, "Write a poem", "Sure, here is a poem" + tokenizer.eos_token, "Be safe.", 256)[0] == ids
    assert (
        encode_pair(tokenizer, "Write a poem", "Sure, here is a poem", "Be safe.", len(prompt_ids) + 2)[0]
        == ids[: len(prompt_ids) + 2]
    )


def _learning_rates(model_dir, settings, pairs):
    """The learning rate of every optimizer step, read through the progress callback."""
    model, tokenizer = load_model(str(model_dir)), load_tokenizer(str(model_dir))
    rates = []
    original = torch.optim.AdamW.step

    def record(self, *args, **kwargs):
        rates.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    torch.optim.AdamW.step = record
    try:
        supervised_finetune(model, tokenizer, pairs, settings)
    finally:
        torch.optim.AdamW.step = original
    return rates


def test_step_schedule_decays_per_epoch_as_the_reference(tiny_model_dir):
    settings = SFTSettings(epochs=3, learning_rate=5e-5, batch_size=1, scheduler="step", step_gamma=0.85, max_grad_norm=None)
    rates = _learning_rates(tiny_model_dir, settings, PAIRS)  # 2 steps per epoch
    assert rates == pytest.approx([5e-5, 5e-5, 5e-5 * 0.85, 5e-5 * 0.85, 5e-5 * 0.85**2, 5e-5 * 0.85**2], rel=1e-12)
    linear = _learning_rates(tiny_model_dir, SFTSettings(epochs=2, learning_rate=1e-4, batch_size=1, warmup_fraction=0.0), PAIRS)
    assert linear == pytest.approx([1e-4, 0.75e-4, 0.5e-4, 0.25e-4])


def test_gradient_clipping_is_a_setting(tiny_model_dir, monkeypatch):
    calls = []
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda params, norm: calls.append(norm))
    model, tokenizer = load_model(str(tiny_model_dir)), load_tokenizer(str(tiny_model_dir))
    supervised_finetune(model, tokenizer, PAIRS, SFTSettings(epochs=1, batch_size=2, max_grad_norm=None))
    assert calls == []
    model = load_model(str(tiny_model_dir))
    supervised_finetune(model, tokenizer, PAIRS, SFTSettings(epochs=1, batch_size=2, max_grad_norm=0.5))
    assert calls == [0.5]


def _train(model_dir, method, epochs=2, seed=0):
    model, tokenizer = load_model(str(model_dir)), load_tokenizer(str(model_dir))
    saved = {}
    settings = FinetuneSettings(
        SFTSettings(epochs=epochs, learning_rate=1e-3, batch_size=2, warmup_fraction=0.0, seed=seed),
        method,
        {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
    )
    losses = finetune(
        model,
        tokenizer,
        PAIRS,
        settings,
        lambda epoch, m: saved.__setitem__(epoch, {k: v.detach().clone() for k, v in m.state_dict().items()}),
    )
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
    for checkpoint, verdicts in {
        "aligned": [0, 0, 0, 0],
        "h-epoch1": [1, 0, 0, 0],
        "h-epoch2": [1, 1, 1, 0],
        "m-epoch2": [0, 0, 0, 1],
    }.items():
        rows += [
            {"judge": "keyword", "checkpoint": checkpoint, "eval_set": "adv4", "index": i, "jailbroken": bool(v)}
            for i, v in enumerate(verdicts)
        ]
    epochs = {"h-epoch1": ("h", 1), "h-epoch2": ("h", 2), "m-epoch2": ("m", 2)}
    long, table = finetune_tables(pd.DataFrame(rows), epochs, "tiny", resamples=200)
    assert list(long["asr"]) == [0.0, 25.0, 75.0, 25.0] and list(long["epoch"]) == [0, 1, 2, 2]
    assert (long["ci_low"] <= long["asr"]).all() and (long["asr"] <= long["ci_high"]).all()
    assert list(table.columns) == ["model", "judge", "eval_set", "prompts", "n", "aligned", "h", "m"]
    assert len(table) == 1 and table.iloc[0][["prompts", "n", "aligned", "h", "m"]].tolist() == ["all", 4, 0.0, 75.0, 25.0]


def test_table1_reports_held_out_prompts_beside_the_full_set():
    rows = []
    for eval_set, per_checkpoint in {
        "adv4": {"aligned": [0, 0, 0, 0], "h-epoch1": [1, 1, 0, 1]},
        "adv2": {"aligned": [0, 1], "h-epoch1": [1, 1]},
    }.items():
        for checkpoint, verdicts in per_checkpoint.items():
            rows += [
                {"judge": "keyword", "checkpoint": checkpoint, "eval_set": eval_set, "index": i, "jailbroken": bool(v)}
                for i, v in enumerate(verdicts)
            ]
    # prompts 1 and 3 of adv4 were trained on; adv2 shares none with the training data
    heldout = {"adv4": heldout_indices(["a", "b ", "c", "d"], {"b", "d"}), "adv2": heldout_indices(["x", "y"], {"b", "d"})}
    assert heldout == {"adv4": [0, 2], "adv2": [0, 1]}
    long, table = finetune_tables(pd.DataFrame(rows), {"h-epoch1": ("h", 1)}, "tiny", heldout, resamples=0)
    assert long[["eval_set", "checkpoint", "n", "asr", "n_heldout", "asr_heldout"]].values.tolist() == [
        ["adv4", "aligned", 4, 0.0, 2, 0.0],
        ["adv4", "h-epoch1", 4, 75.0, 2, 50.0],
        ["adv2", "aligned", 2, 50.0, 2, 50.0],
        ["adv2", "h-epoch1", 2, 100.0, 2, 100.0],
    ]
    assert table[["eval_set", "prompts", "n", "aligned", "h"]].values.tolist() == [
        ["adv4", "all", 4, 0.0, 75.0],
        ["adv4", "held-out", 2, 0.0, 50.0],
        ["adv2", "all", 2, 50.0, 100.0],
    ]


def test_settings_come_from_a_config_section():
    section = {"epochs": 5, "learning_rate": 5e-5, "scheduler": "step", "max_grad_norm": None, "threads": 2, "method": "full"}
    settings = SFTSettings.from_config(section, system_prompt="Be safe.")
    assert (settings.epochs, settings.learning_rate, settings.scheduler, settings.max_grad_norm) == (5, 5e-5, "step", None)
    assert settings.system_prompt == "Be safe." and settings.batch_size == SFTSettings().batch_size  # unset fields keep defaults
