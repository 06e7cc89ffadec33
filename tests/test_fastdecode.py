"""The static-cache decode path gives what the eager engine gives: on the CPU (the step called directly) and,
where there is one, on a CUDA GPU (the step replayed as a CUDA graph)."""

from collections import Counter

import pytest
import torch

from conftest import build_tiny_tokenizer, tiny_llama_config
from safety_landscape import decoding, fastdecode
from safety_landscape.decoding import greedy_generate
from safety_landscape.fastdecode import static_greedy_generate

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=cuda)]

# Distinct prompt lengths, so that every batch is left-padded; 8 prompts in batches of 3 (the last one partial).
PROMPT_LENGTHS = (5, 9, 13, 7, 17, 11, 15, 10)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer()


def tiny_llama(tokenizer, dtype, device):
    from transformers import LlamaForCausalLM

    config = tiny_llama_config(
        tokenizer,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        initializer_range=0.2,  # spread-out logits: greedy choices are not near-ties
    )
    torch.manual_seed(0)
    return LlamaForCausalLM(config).to(device=device, dtype=dtype).eval()


def prompts(tokenizer):
    generator = torch.Generator().manual_seed(1)
    return [torch.randint(3, len(tokenizer), (n,), generator=generator).tolist() for n in PROMPT_LENGTHS]


def frequent_token(model, tokenizer, ids, rank=0):
    """The token that HF generate emits in the most rows (rank 0), or the next most common ones."""
    x, mask = decoding.left_pad(ids, tokenizer.pad_token_id, model.device)
    pad = tokenizer.pad_token_id
    out = model.generate(input_ids=x, attention_mask=mask, max_new_tokens=24, do_sample=False, pad_token_id=pad)
    special = {tokenizer.pad_token_id, tokenizer.eos_token_id}
    counts = Counter(t for row in out[:, x.shape[1] :].tolist() for t in set(row) - special)
    return counts.most_common()[rank][0]


# bf16 on the CPU: the two engines' attention kernels round differently enough to part after ~20 tokens.
@pytest.mark.parametrize(
    "device, dtype",
    [("cpu", torch.float32), pytest.param("cuda", torch.float32, marks=cuda), pytest.param("cuda", torch.bfloat16, marks=cuda)],
)
def test_forced_length_equals_eager_engine(tokenizer, dtype, device):
    model, ids = tiny_llama(tokenizer, dtype, device), prompts(tokenizer)
    expected = greedy_generate(model, tokenizer, ids, 40, 3, min_new_tokens=40)
    assert static_greedy_generate(model, tokenizer, ids, 40, 3, min_new_tokens=40) == expected
    assert all(g.num_tokens == 40 and g.finish_reason == "length" for g in expected)


@pytest.mark.parametrize("device", DEVICES)
def test_eager_attention_gets_an_additive_mask(tokenizer, device):
    model, ids = tiny_llama(tokenizer, torch.float32, device), prompts(tokenizer)
    model.set_attn_implementation("eager")
    expected = greedy_generate(model, tokenizer, ids, 40, 3, min_new_tokens=40)
    assert static_greedy_generate(model, tokenizer, ids, 40, 3, min_new_tokens=40) == expected


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("min_new_tokens", [0, 6])
def test_eos_stops_like_the_eager_engine(tokenizer, min_new_tokens, device):
    model, ids = tiny_llama(tokenizer, torch.float32, device), prompts(tokenizer)
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, frequent_token(model, tokenizer, ids)]
    expected = greedy_generate(model, tokenizer, ids, 30, 3, min_new_tokens=min_new_tokens)
    assert static_greedy_generate(model, tokenizer, ids, 30, 3, min_new_tokens=min_new_tokens) == expected
    assert any(g.finish_reason == "eos" for g in expected)
    assert all(g.num_tokens >= min_new_tokens for g in expected if g.finish_reason == "eos")


@pytest.mark.parametrize("device", DEVICES)
def test_refusal_stop_like_the_eager_engine(tokenizer, monkeypatch, device):
    """A random model says no refusal keyword: make a frequent token's text count as one."""
    model, ids = tiny_llama(tokenizer, torch.float32, device), prompts(tokenizer)
    marker = tokenizer.decode([frequent_token(model, tokenizer, ids, rank=1)])
    monkeypatch.setattr(decoding, "first_refusal_keyword", lambda text: "marker" if marker in text else None)
    expected = greedy_generate(model, tokenizer, ids, 30, 3, stop_on_refusal=True)
    assert static_greedy_generate(model, tokenizer, ids, 30, 3, stop_on_refusal=True) == expected
    assert any(g.finish_reason == "refusal" for g in expected)


@pytest.mark.parametrize("device", DEVICES)
def test_single_new_token(tokenizer, device):
    model, ids = tiny_llama(tokenizer, torch.float32, device), prompts(tokenizer)
    assert static_greedy_generate(model, tokenizer, ids, 1, 4) == greedy_generate(model, tokenizer, ids, 1, 4)


@pytest.mark.parametrize("device", DEVICES)
def test_batch_shrinks_to_its_running_rows_and_outputs_stay_equal(tokenizer, monkeypatch, device):
    """Rows whose prompt makes them stop early leave the batch once at most half of it runs; the others
    decode on in a smaller batch and every output equals the eager engine's."""
    model, ids = tiny_llama(tokenizer, torch.float32, device), prompts(tokenizer)
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, frequent_token(model, tokenizer, ids)]
    sizes = []
    keep = fastdecode._DecodeState.keep
    monkeypatch.setattr(
        fastdecode._DecodeState, "keep", lambda self, rows: (sizes.append((len(self.rows), len(rows))), keep(self, rows))
    )
    expected = greedy_generate(model, tokenizer, ids, 60, 8)
    assert static_greedy_generate(model, tokenizer, ids, 60, 8) == expected
    lengths = sorted(g.num_tokens for g in expected)
    assert lengths[3] < 60 - 2 * fastdecode.SYNC_EVERY, lengths  # at least half the rows end early: the batch must shrink
    assert sizes and all(0 < after <= before // 2 for before, after in sizes), sizes
