"""Greedy decoding for CUDA: a static KV cache and the one-token decode step replayed as a CUDA graph.

`static_greedy_generate` gives what `decoding.greedy_generate` gives (same batches of length-sorted prompts,
left padding with the tokenizer's pad token, position ids from the attention mask, EOS from
`min_new_tokens` tokens on, optional stop at the first refusal keyword, same `Generation` records) but
decodes differently:

- each batch keeps its shape to the end: finished rows keep decoding and their extra tokens are dropped;
- the KV cache (`transformers.StaticCache`) holds prompt + `max_new_tokens` positions from the start, and
  the decode step gets a prepared 4D attention mask over all of them (masked where empty or padding), so
  no tensor changes shape and `transformers` builds no mask (its 2D-mask path reads values on the host);
- the decode step (mask update, forward, argmax, write of the token and of the next step's inputs) is
  captured once per batch in a `torch.cuda.CUDAGraph` and replayed, so the tokens never leave the GPU
  inside the loop;
- the host copies the new tokens every `SYNC_EVERY` steps and checks them one chunk behind the GPU, which
  meanwhile runs the next chunk; decoding stops at most two chunks after every row has finished.

Only numerics can differ from the eager engine: attention runs over the masked static length (and, for a
batch without padding, the eager engine gets SDPA's flash kernel where this path gets the memory-efficient
one), and the eager engine shrinks its batches. In bf16 an output can therefore part from the eager
engine's where two logits are within rounding of each other. In docs/benchmarks.md, with SDPA held to
one kernel, all 80 outputs of a 7B-shaped model agreed token for token over 512 tokens.
"""

from __future__ import annotations

from collections import deque
from typing import Sequence

import torch

from .decoding import Generation, decode_in_batches, eos_token_ids, left_pad, stop_reason

SYNC_EVERY = 8  # decode steps between two copies of the new tokens to the host


@torch.inference_mode()
def static_greedy_generate(
    model,
    tokenizer,
    prompt_ids: Sequence[Sequence[int]],
    max_new_tokens: int,
    batch_size: int,
    stop_on_refusal: bool = False,
    min_new_tokens: int = 0,
) -> list[Generation]:
    """Greedy-decode every prompt on the model's CUDA device; same results as `decoding.greedy_generate`."""
    if model.device.type != "cuda":
        raise ValueError(
            f"static_greedy_generate needs a model on a CUDA device, not {model.device}; use decoding.greedy_generate"
        )
    eos = eos_token_ids(model, tokenizer)

    def decode_batch(batch: list[Sequence[int]]) -> list[Generation]:
        rows = _generate_batch(model, tokenizer, batch, max_new_tokens, eos, stop_on_refusal, min_new_tokens)
        return [Generation(tokenizer.decode(tokens, skip_special_tokens=True), len(tokens), reason) for tokens, reason in rows]

    return decode_in_batches(prompt_ids, batch_size, decode_batch)


def _mask_values(model) -> tuple[torch.dtype, bool | float, bool | float]:
    """dtype, attend value and masked value of a prepared 4D mask for the model's attention implementation."""
    implementation = model.config._attn_implementation
    if implementation == "sdpa":
        return torch.bool, True, False
    if implementation == "eager":
        return model.dtype, 0.0, torch.finfo(model.dtype).min
    raise ValueError(f"static_greedy_generate supports the 'sdpa' and 'eager' attention implementations, not {implementation!r}")


def _generate_batch(
    model, tokenizer, prompt_ids, max_new_tokens, eos, stop_on_refusal, min_new_tokens
) -> list[tuple[list[int], str]]:
    """Token ids and finish reason of each prompt of one batch."""
    from transformers import StaticCache

    device = model.device
    ids, mask2d = left_pad(prompt_ids, tokenizer.pad_token_id, device)
    batch, width = ids.shape
    length = width + max_new_tokens
    positions = (mask2d.cumsum(-1) - 1).masked_fill(mask2d == 0, 1)
    cache = StaticCache(config=model.config, max_cache_len=length)
    logits = model(input_ids=ids, attention_mask=mask2d, position_ids=positions, past_key_values=cache, logits_to_keep=1).logits

    # State of the decode step, all updated in place by the step itself. out[j] is the j-th new token of
    # every row; the step fed with the token at cache slot `slot` writes out[slot - width + 1].
    out = torch.empty((max_new_tokens, batch), dtype=torch.long, device=device)
    out[0] = logits[:, -1].argmax(-1)
    token = out[0][:, None].clone()
    position = positions[:, -1:] + 1
    slot = torch.tensor([width], device=device)
    mask_dtype, attend, masked = _mask_values(model)
    mask = torch.full((batch, 1, 1, length), masked, dtype=mask_dtype, device=device)
    mask[..., :width].masked_fill_(mask2d[:, None, None, :].bool(), attend)

    def step() -> None:
        mask.index_fill_(3, slot, attend)
        logits = model(input_ids=token, attention_mask=mask, position_ids=position, past_key_values=cache).logits
        next_token = logits[:, -1].argmax(-1)
        out.index_copy_(0, slot - (width - 1), next_token[None])
        token.copy_(next_token[:, None])
        position.add_(1)
        slot.add_(1)

    tokens: list[list[int]] = [[] for _ in range(batch)]
    reasons: list[str | None] = [None] * batch
    chunks: deque = deque()  # (host tokens, copy-done event) of chunks not yet checked

    def send(first: int, end: int) -> None:
        chunks.append((out[first:end].to("cpu", non_blocking=True), torch.cuda.Event()))
        chunks[-1][1].record()

    def check() -> bool:
        """Absorb the oldest chunk's tokens; True when every row has finished."""
        host, done = chunks.popleft()
        done.synchronize()
        for row, new in enumerate(host.t().tolist()):
            for tok in new if reasons[row] is None else ():
                tokens[row].append(tok)
                reasons[row] = stop_reason(tokenizer, tokens[row], eos, stop_on_refusal, min_new_tokens)
                if reasons[row]:
                    break
        return all(reasons)

    produced = 1
    if max_new_tokens > 1:
        replay = _graphed(step)  # runs the step once (warm-up): the second new token
        produced = 2
    send(0, produced)
    finished = False
    while produced < max_new_tokens and not finished:
        end = min(produced + SYNC_EVERY, max_new_tokens)
        for _ in range(end - produced):
            replay()
        send(produced, end)
        produced = end
        finished = check()  # the previous chunk, while the GPU runs this one
    while chunks and not finished:
        finished = check()
    torch.cuda.current_stream().synchronize()  # no replay may still run when the graph and its buffers go
    return [(t, r or "length") for t, r in zip(tokens, reasons)]


def _graphed(step):
    """Run `step` once on a side stream (warm-up, so that capture sees no first-call work), then capture it."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        step()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay
