import pandas as pd

from conftest import ADVBENCH
from safety_landscape.decoding import greedy_generate, left_pad, render_prompts


def test_greedy_generate_equals_hf_generate(tiny_model):
    model, tokenizer = tiny_model
    prompts = pd.read_csv(ADVBENCH)["goal"].tolist()[:6]
    ids = render_prompts(tokenizer, prompts, "Be safe.", True)
    ours = greedy_generate(model, tokenizer, ids, 12, batch_size=4)
    x, mask = left_pad(ids, tokenizer.pad_token_id, "cpu")
    ref = model.generate(
        input_ids=x, attention_mask=mask, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id
    )
    expected = [tokenizer.decode(r[x.shape[1] :], skip_special_tokens=True) for r in ref]
    assert [g.text for g in ours] == expected
    assert all(g.num_tokens <= 12 for g in ours)


def test_render_prompts_uses_the_chat_template_and_system_prompt(tiny_model):
    _, tokenizer = tiny_model
    text = tokenizer.decode(render_prompts(tokenizer, ["Hi"], "SYS", True)[0])
    assert text == "<|im_start|>system\nSYS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert "system" not in tokenizer.decode(render_prompts(tokenizer, ["Hi"], None, True)[0])


def test_stop_on_refusal_truncates_at_the_keyword(tiny_model, monkeypatch):
    """Force the model to emit a refusal by boosting its tokens; generation stops right after the keyword."""
    model, tokenizer = tiny_model
    target = tokenizer("I cannot help. More text follows here", add_special_tokens=False)["input_ids"]
    ids = render_prompts(tokenizer, ["Tell me"], None, True)
    original = model.forward

    def scripted(*args, **kwargs):
        out = original(*args, **kwargs)
        step = kwargs["attention_mask"].shape[1] - len(ids[0])
        out.logits[:, -1, target[min(step, len(target) - 1)]] += 1e4
        return out

    monkeypatch.setattr(model, "forward", scripted)
    full = greedy_generate(model, tokenizer, ids, len(target), 1)[0]
    stopped = greedy_generate(model, tokenizer, ids, len(target), 1, stop_on_refusal=True)[0]
    assert full.text.startswith("I cannot help")
    assert stopped.finish_reason == "refusal" and stopped.text.endswith("I cannot")
    assert stopped.num_tokens < full.num_tokens
