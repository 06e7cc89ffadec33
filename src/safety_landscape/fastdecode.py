"""Greedy decoding for CUDA: a static KV cache and the one-token decode step replayed as a CUDA graph.

`static_greedy_generate` gives what `decoding.greedy_generate` gives (same batches of length-sorted prompts,
left padding with the tokenizer's pad token, position ids from the attention mask, EOS from
`min_new_tokens` tokens on, optional stop at the first refusal keyword, same `Generation` records) but
decodes differently:

- the KV cache (`transformers.StaticCache`) holds prompt + `max_new_tokens` positions from the start, and
  the decode step gets a prepared 4D attention mask over all of them (masked where empty or padding), so
  no tensor changes shape and `transformers` builds no mask (its 2D-mask path reads values on the host);
- the decode step (mask update, forward, argmax, write of the token and of the next step's inputs) is
  captured in a `torch.cuda.CUDAGraph` and replayed, so the tokens never leave the GPU inside the loop;
- the host copies the new tokens every `SYNC_EVERY` steps and checks them one chunk behind the GPU, which
  meanwhile runs the next chunk; decoding stops at most two chunks after every row has finished;
- finished rows keep decoding (their extra tokens are dropped) until at most half of the batch's rows are
  still running: then the batch shrinks to those rows (cache, mask and inputs gathered) and the step is
  captured again for the smaller batch. A step with k live rows thus costs at most what a batch of 2k
  costs: in the safety basin, where most rows refuse within their first tokens, the few long answers no
  longer pay for the whole batch.

Only numerics can differ from the eager engine: attention runs over the masked static length (and, for a
batch without padding, the eager engine gets SDPA's flash kernel where this path gets the memory-efficient
one), and the two engines shrink their batches at different steps. In bf16 an output can therefore part from
the eager engine's where two logits are within rounding of each other. In docs/benchmarks.md, with SDPA held
to one kernel, all 80 outputs of a 7B-shaped model agreed token for token over 512 tokens.

Off CUDA (tests) the same algorithm runs with the step called directly instead of a graph.
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
    shrink: bool = True,
) -> list[Generation]:
    """Greedy-decode every prompt; same results as `decoding.greedy_generate` (CUDA graphs on a CUDA device).
    shrink=False keeps every batch whole to its end (finished rows decode on), for comparison."""
    eos = eos_token_ids(model, tokenizer)

    def decode_batch(batch: list[Sequence[int]]) -> list[Generation]:
        rows = _generate_batch(model, tokenizer, batch, max_new_tokens, eos, stop_on_refusal, min_new_tokens, shrink)
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


class _DecodeState:
    """What one decode step reads and updates in place, for the rows still in the batch.

    out[j] is the j-th new token of every row; the step fed with the token at cache slot `slot` writes
    out[slot - width + 1]. `rows` maps the batch's rows to the rows of the original batch."""

    def __init__(self, model, cache, out, token, position, mask, slot, width: int, attend):
        self.model, self.cache, self.out, self.token, self.position, self.mask = model, cache, out, token, position, mask
        self.slot, self.width, self.attend = slot, width, attend
        self.rows = list(range(out.shape[1]))

    def step(self) -> None:
        self.mask.index_fill_(3, self.slot, self.attend)
        logits = self.model(
            input_ids=self.token, attention_mask=self.mask, position_ids=self.position, past_key_values=self.cache
        )
        next_token = logits.logits[:, -1].argmax(-1)
        self.out.index_copy_(0, self.slot - (self.width - 1), next_token[None])
        self.token.copy_(next_token[:, None])
        self.position.add_(1)
        self.slot.add_(1)

    def keep(self, batch_rows: list[int]) -> None:
        """Keep only the given rows of the batch (new, smaller tensors; a captured step must be captured again)."""
        index = torch.tensor(batch_rows, device=self.out.device)
        for layer in self.cache.layers:
            layer.keys, layer.values = layer.keys.index_select(0, index), layer.values.index_select(0, index)
            layer.batch_size = len(batch_rows)
        self.out, self.token = self.out.index_select(1, index), self.token.index_select(0, index)
        self.position, self.mask = self.position.index_select(0, index), self.mask.index_select(0, index)
        self.rows = [self.rows[i] for i in batch_rows]


def _generate_batch(
    model, tokenizer, prompt_ids, max_new_tokens, eos, stop_on_refusal, min_new_tokens, shrink
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

    out = torch.empty((max_new_tokens, batch), dtype=torch.long, device=device)
    out[0] = logits[:, -1].argmax(-1)
    mask_dtype, attend, masked = _mask_values(model)
    mask = torch.full((batch, 1, 1, length), masked, dtype=mask_dtype, device=device)
    mask[..., :width].masked_fill_(mask2d[:, None, None, :].bool(), attend)
    slot = torch.tensor([width], device=device)
    state = _DecodeState(model, cache, out, out[0][:, None].clone(), positions[:, -1:] + 1, mask, slot, width, attend)

    tokens: list[list[int]] = [[] for _ in range(batch)]
    reasons: list[str | None] = [None] * batch
    chunks: deque = deque()  # (host tokens, their original rows, copy-done event or None) of chunks not yet checked

    def send(first: int, end: int) -> None:
        host = state.out[first:end].to("cpu", non_blocking=True)
        done = torch.cuda.Event() if device.type == "cuda" else None
        if done is not None:
            done.record()
        chunks.append((host, state.rows, done))

    def check() -> bool:
        """Absorb the oldest chunk's tokens; True when every row has finished."""
        host, rows, done = chunks.popleft()
        if done is not None:
            done.synchronize()
        for row, new in zip(rows, host.t().tolist()):
            for tok in new if reasons[row] is None else ():
                tokens[row].append(tok)
                reasons[row] = stop_reason(tokenizer, tokens[row], eos, stop_on_refusal, min_new_tokens)
                if reasons[row]:
                    break
        return all(reasons)

    produced, replay = 1, None
    if max_new_tokens > 1:
        replay = _captured(state.step, device)  # runs the step once (warm-up): the second new token
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
        live = [i for i, row in enumerate(state.rows) if reasons[row] is None]
        if shrink and not finished and produced < max_new_tokens and len(live) <= len(state.rows) // 2:
            while chunks and not finished:  # every token so far is on the host before the rows change
                finished = check()
            live = [i for i, row in enumerate(state.rows) if reasons[row] is None]
            if not finished:
                _synchronize(device)  # no replay may still run when the graph and its buffers go
                replay = None
                state.keep(live)
                replay = _captured(state.step, device)
                produced += 1
                send(produced - 1, produced)
    while chunks and not finished:
        finished = check()
    _synchronize(device)
    return [(t, r or "length") for t, r in zip(tokens, reasons)]


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.current_stream(device).synchronize()


def _captured(step, device: torch.device):
    """Run `step` once, then return a function that repeats it: on CUDA the replay of a graph captured
    after that warm-up run (on a side stream, so that capture sees no first-call work), elsewhere `step`."""
    if device.type != "cuda":
        step()
        return step
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        step()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay
