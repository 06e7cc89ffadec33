"""Finetune stage: datasets, full and LoRA training with per-epoch checkpoints, Table 1, config checks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from conftest import ADVBENCH, REPO
from safety_landscape import finetune as ft
from safety_landscape.decoding import render_prompts
from safety_landscape.finetune import FinetuneSettings, finetune, harmful_pairs, safe_pairs, template_refusals
from safety_landscape.io import read_json
from safety_landscape.metrics import heldout_indices
from safety_landscape.modeling import load_model, load_tokenizer
from safety_landscape.prompts import PromptFileError, load_pairs
from safety_landscape.tables import finetune_tables
from safety_landscape.training import SFTSettings, encode_pair, epoch_folder, supervised_finetune
from test_workflow import SNAKEMAKE, make_workdir, snakemake

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


FINISHED = ["epoch1", "epoch2", "epoch3", "lock", "state-3.safetensors", "state.json"]  # a checkpoint folder after 3 epochs


class Killed(Exception):
    """Stands for the process being killed in the middle of a step."""


def _train(model_dir, folder, method="full", epochs=2, pairs=PAIRS, identity=None, kill_at_step=None, **sft):
    """Finetune into the checkpoint folder `folder`; `kill_at_step` (1-based) raises Killed instead of that optimizer
    step. Returns the losses, every epoch's weights and the number of optimizer steps taken."""
    model, tokenizer = load_model(str(model_dir)), load_tokenizer(str(model_dir))
    settings = FinetuneSettings(
        SFTSettings(**{"epochs": epochs, "learning_rate": 1e-3, "batch_size": 2, "warmup_fraction": 0.0} | sft),
        method,
        {"r": 4, "alpha": 8, "dropout": 0.1, "target_modules": ["q_proj", "v_proj"]},
    )
    steps = 0
    original = torch.optim.AdamW.step

    def step(self, *args, **kwargs):
        nonlocal steps
        steps += 1
        if steps == kill_at_step:
            raise Killed
        return original(self, *args, **kwargs)

    torch.optim.AdamW.step = step
    try:
        losses = finetune(model, tokenizer, pairs, settings, folder, identity or {"model": "tiny"})
    finally:
        torch.optim.AdamW.step = original
    return losses, {e: load_file(epoch_folder(folder, e) / "model.safetensors") for e in range(1, epochs + 1)}, steps


def _assert_same_weights(saved, expected):
    assert sorted(saved) == sorted(expected)
    for epoch in expected:
        assert sorted(saved[epoch]) == sorted(expected[epoch])
        assert all(torch.equal(saved[epoch][k], expected[epoch][k]) for k in expected[epoch]), f"epoch {epoch} differs"


def test_full_finetune_saves_every_epoch_and_is_reproducible(tiny_model_dir, tmp_path):
    base = load_model(str(tiny_model_dir)).state_dict()
    losses, saved, _ = _train(tiny_model_dir, tmp_path / "first")
    assert sorted(saved) == [1, 2] and len(losses) == 2 and losses[1] < losses[0]
    changed = [k for k in base if not torch.equal(base[k], saved[1][k])]
    assert "model.embed_tokens.weight" in changed and "model.layers.0.input_layernorm.weight" in changed  # every parameter trains
    assert not torch.equal(saved[1]["lm_head.weight"], saved[2]["lm_head.weight"])  # epochs differ
    _, again, _ = _train(tiny_model_dir, tmp_path / "again")
    _assert_same_weights(again, saved)  # fixed seeds


def test_lora_checkpoints_are_merged_and_touch_only_target_modules(tiny_model_dir, tmp_path):
    base = load_model(str(tiny_model_dir)).state_dict()
    _, saved, _ = _train(tiny_model_dir, tmp_path, "lora", epochs=1)
    merged = saved[1]
    assert set(merged) == set(base)  # a plain checkpoint: no adapter tensors left
    changed = {k for k in base if not torch.equal(base[k], merged[k])}
    assert changed and all(("q_proj" in k or "v_proj" in k) for k in changed)


@pytest.fixture(scope="module")
def straight_full(tiny_model_dir, tmp_path_factory):
    """Losses and weights of a full finetune of 3 epochs of 2 steps, never stopped."""
    losses, saved, _ = _train(tiny_model_dir, tmp_path_factory.mktemp("straight"), epochs=3, batch_size=1)
    return losses, saved


@pytest.mark.parametrize(("method", "scheduler"), [("full", "linear"), ("lora", "step")])
def test_killed_finetune_resumes_after_its_last_epoch_as_if_never_stopped(tiny_model_dir, tmp_path, caplog, method, scheduler):
    # 3 epochs of 2 steps; LoRA dropout draws from the global RNG, the data order from its own generator
    straight_losses, straight, _ = _train(tiny_model_dir, tmp_path / "straight", method, 3, batch_size=1, scheduler=scheduler)
    folder = tmp_path / "killed"
    with pytest.raises(Killed):
        _train(tiny_model_dir, folder, method, 3, batch_size=1, scheduler=scheduler, kill_at_step=4)  # in epoch 2
    assert read_json(folder / "state.json")["epoch"] == 1 and not (folder / "epoch2").exists()
    finished = (folder / "epoch1" / "model.safetensors").stat()
    with caplog.at_level("INFO"):
        losses, saved, steps = _train(tiny_model_dir, folder, method, 3, batch_size=1, scheduler=scheduler)
    assert "resuming from epoch 1 of 3" in caplog.text and steps == 4  # epochs 2 and 3 only
    assert (folder / "epoch1" / "model.safetensors").stat().st_mtime_ns == finished.st_mtime_ns
    assert losses == straight_losses and len(losses) == 6
    _assert_same_weights(saved, straight)


def test_checkpoints_keep_one_optimizer_state_and_none_after_the_last_epoch(tiny_model_dir, tmp_path):
    with pytest.raises(Killed):
        _train(tiny_model_dir, tmp_path, epochs=3, batch_size=1, kill_at_step=6)  # in epoch 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch1", "epoch2", "lock", "state-2.safetensors", "state.json"]
    moments = {k.rsplit("/", 1)[1] for k in load_file(tmp_path / "state-2.safetensors") if k.startswith("optimizer/")}
    assert moments == {"exp_avg", "exp_avg_sq", "step"}
    _train(tiny_model_dir, tmp_path, epochs=3, batch_size=1)
    state = load_file(tmp_path / "state-3.safetensors")
    assert sorted(state) == ["rng/cpu", "rng/data_order"]  # full finetuning: the weights are the saved model's
    assert read_json(tmp_path / "state.json")["optimizer"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == FINISHED


@pytest.mark.parametrize(
    "change",
    [{"learning_rate": 2e-3}, {"pairs": PAIRS[::-1]}, {"seed": 1}, {"identity": {"model": "another"}}],
    ids=["setting", "data", "seed", "model"],
)
def test_a_changed_training_does_not_resume_stale_state(tiny_model_dir, tmp_path, caplog, change):
    folder = tmp_path / "shared"
    with pytest.raises(Killed):
        _train(tiny_model_dir, folder, epochs=3, batch_size=1, kill_at_step=4)
    with caplog.at_level("INFO"):
        losses, saved, steps = _train(tiny_model_dir, folder, epochs=3, batch_size=1, **change)
    assert "other model, data or settings; training from the start" in caplog.text and "resuming" not in caplog.text
    assert steps == 6
    clean_losses, clean, _ = _train(tiny_model_dir, tmp_path / "clean", epochs=3, batch_size=1, **change)
    assert losses == clean_losses
    _assert_same_weights(saved, clean)


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda folder: _truncate(folder / "state-1.safetensors"), "state-1.safetensors missing or changed"),
        (lambda folder: _truncate(folder / "epoch1" / "model.safetensors"), "epoch1/model.safetensors missing or changed"),
        (lambda folder: (folder / "epoch1" / "config.json").unlink(), "epoch1/config.json missing or changed"),
        (lambda folder: _truncate(folder / "state.json"), "state.json is not valid JSON"),
    ],
    ids=["tensors", "weights", "model-file", "state"],
)
def test_a_damaged_state_is_never_loaded(tiny_model_dir, tmp_path, caplog, straight_full, damage, reason):
    straight_losses, straight = straight_full
    folder = tmp_path / "killed"
    with pytest.raises(Killed):
        _train(tiny_model_dir, folder, epochs=3, batch_size=1, kill_at_step=4)
    damage(folder)
    with caplog.at_level("INFO"):
        losses, saved, steps = _train(tiny_model_dir, folder, epochs=3, batch_size=1)
    assert reason in caplog.text and "training from the start" in caplog.text and steps == 6
    assert losses == straight_losses
    _assert_same_weights(saved, straight)


def test_writes_cut_short_by_a_kill_are_ignored_and_cleaned_up(tiny_model_dir, tmp_path, caplog, straight_full):
    with pytest.raises(Killed):
        _train(tiny_model_dir, tmp_path, epochs=3, batch_size=1, kill_at_step=4)
    # what a kill while saving epoch 2 leaves: a half-written model folder and state file
    (tmp_path / "epoch2.partial").mkdir()
    (tmp_path / "epoch2.partial" / "model.safetensors").write_bytes(b"\0" * 10)
    (tmp_path / ".state-2.safetensors.x1y2.tmp").write_bytes(b"\0" * 10)
    with caplog.at_level("INFO"):
        losses, saved, steps = _train(tiny_model_dir, tmp_path, epochs=3, batch_size=1)
    assert "resuming from epoch 1 of 3" in caplog.text and steps == 4
    assert losses == straight_full[0]
    _assert_same_weights(saved, straight_full[1])
    assert sorted(p.name for p in tmp_path.iterdir()) == FINISHED


def _finetune_outputs(workdir):
    """Every epoch's weights and the losses of the workflow's finetune of dataset "harm"."""
    folder = workdir / "results" / "tiny" / "finetune" / "harm"
    weights = {e: load_file(folder / f"epoch{e}" / "model" / "model.safetensors") for e in (1, 2, 3)}
    return read_json(folder / "training.json")["losses"], weights


def test_finetune_job_killed_mid_epoch_resumes_in_the_workflow(tmp_path, tiny_model_dir):
    finetune = {
        "enabled": True,
        "datasets": [{"name": "harm", "kind": "harmful", "shots": 24}],
        "epochs": 3,
        "batch_size": 1,
        "harmful_file": str(ADVBENCH),
        "refusals": str(REPO / "data" / "align" / "refusals.txt"),
        "evaluation": {"sets": [{"name": "adv4", "file": str(ADVBENCH), "count": 4}]},
        "plane": {"datasets": []},
    }
    target = "results/tiny/finetune/harm/training.json"
    killed = make_workdir(tmp_path / "killed", tiny_model_dir, finetune=finetune)
    cache = killed / "results" / "cache" / "finetune"
    cmd = SNAKEMAKE + ["--directory", str(killed), target, "--configfile", str(killed / "config.yaml")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline and not list(cache.glob("*/state.json")):
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    (state,) = cache.glob("*/state.json")
    assert read_json(state)["epoch"] == 1, "the kill should land in epoch 2"
    finished = (state.parent / "epoch1" / "model.safetensors").stat()
    assert not (killed / target).exists()

    snakemake(killed, "--unlock")
    snakemake(killed, target)
    log = (killed / "results" / "tiny" / "finetune" / "logs" / "finetune" / "harm.log").read_text()
    assert log.count("resuming from epoch 1 of 3") == 1
    output = killed / "results" / "tiny" / "finetune" / "harm" / "epoch1" / "model" / "model.safetensors"
    assert output.stat().st_ino == finished.st_ino and output.stat().st_mtime_ns == finished.st_mtime_ns  # kept once, not redone
    assert "Nothing to be done" in snakemake(killed, "-n", target).stdout  # the linked outputs are up to date

    clean = make_workdir(tmp_path / "clean", tiny_model_dir, finetune=finetune)
    snakemake(clean, target)
    (losses, weights), (clean_losses, clean_weights) = _finetune_outputs(killed), _finetune_outputs(clean)
    assert losses == clean_losses and len(losses) == 3 * 24
    _assert_same_weights(weights, clean_weights)


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
