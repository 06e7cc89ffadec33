"""Generate stage: set the weights to theta + sum(c_i d_i) exactly and greedy-decode the prompts.

The model loads once per job; every point is computed from the original weights (never
accumulated), and each finished point is written at once, both to its output file and to a
content-addressed cache, so an interrupted job resumes without regenerating finished points.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch

from . import __version__
from .directions import load_direction
from .engine import greedy_generate, render_prompts
from .io import atomic_path, sha256_json, write_jsonl
from .points import Term, read_point

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecodingSettings:
    max_new_tokens: int
    batch_size: int
    system_prompt: str | None
    chat_template: bool
    stop_on_refusal: bool
    dtype: str
    engine: str = "hf"

    def cache_fields(self) -> dict:
        """Settings that change the generated text (batch size does not)."""
        fields = asdict(self)
        del fields["batch_size"]
        return fields


class Perturber:
    """Holds a copy of the original weights and sets W = W0 + sum_i c_i d_i (float32 accumulation)."""

    def __init__(self, model):
        self.params = dict(model.named_parameters())
        self.origin: dict[str, torch.Tensor] = {}

    def set(self, terms: Sequence[tuple[dict[str, torch.Tensor], float]]) -> None:
        touched = {name for tensors, _ in terms for name in tensors}
        unknown = touched - self.params.keys()
        if unknown:
            raise KeyError(f"direction tensors {sorted(unknown)[:5]} are not parameters of the model; regenerate the directions for this model")
        for name in touched - self.origin.keys():
            self.origin[name] = self.params[name].detach().clone()
        with torch.no_grad():
            for name, w0 in self.origin.items():
                update = [(t[name], c) for t, c in terms if name in t and c != 0.0]
                if not update:
                    self.params[name].copy_(w0)
                    continue
                acc = w0.to(torch.float32)
                for d, c in update:
                    acc = acc + c * d.to(device=acc.device, dtype=torch.float32)
                self.params[name].copy_(acc.to(w0.dtype))


def response_cache_key(model_digest: str, terms: Sequence[Term], prompts_digest: str, settings: DecodingSettings) -> str:
    """Identity of a point's responses: weights (model + nonzero terms), prompts and decoding settings."""
    nonzero = sorted((t.digest, t.coefficient) for t in terms if t.coefficient != 0.0)
    return sha256_json({"model": model_digest, "terms": nonzero, "prompts": prompts_digest, "decoding": settings.cache_fields()})


class DirectionStore:
    """Loads each direction file once per job, on the model's device."""

    def __init__(self, device):
        self.device = device
        self.loaded: dict[str, dict[str, torch.Tensor]] = {}

    def get(self, term: Term) -> dict[str, torch.Tensor]:
        if term.digest not in self.loaded:
            tensors, meta = load_direction(term.direction, device=str(self.device))
            if meta["content_digest"] != term.digest:
                raise ValueError(f"{term.direction} no longer matches the point's digest; rerun the materialize rule")
            self.loaded[term.digest] = tensors
        return self.loaded[term.digest]


def generate_points(
    model,
    tokenizer,
    model_digest: str,
    prompts: list[str],
    prompts_digest: str,
    settings: DecodingSettings,
    point_files: Sequence[str],
    output_files: Sequence[str],
    cache_dir: str | os.PathLike,
    point_labels: Sequence[dict],
) -> None:
    """Write one responses JSONL per point, reusing the cache for points generated before."""
    perturber, store = Perturber(model), DirectionStore(model.device)
    prompt_ids = render_prompts(tokenizer, prompts, settings.system_prompt, settings.chat_template)
    for point_file, out, label in zip(point_files, output_files, point_labels, strict=True):
        terms, meta = read_point(point_file)
        if meta["model_digest"] != model_digest:
            raise ValueError(f"{point_file} was made for another model; rerun the materialize rule")
        cached = Path(cache_dir) / f"{response_cache_key(model_digest, terms, prompts_digest, settings)}.jsonl"
        if cached.is_file():
            log.info("%s: reusing cached responses %s", label, cached.name)
            with atomic_path(out) as tmp:
                shutil.copyfile(cached, tmp)
            continue
        perturber.set([(store.get(t), t.coefficient) for t in terms])
        gens = greedy_generate(model, tokenizer, prompt_ids, settings.max_new_tokens, settings.batch_size, settings.stop_on_refusal)
        provenance = {
            "model_digest": model_digest,
            "terms": [{"digest": t.digest, "coefficient": t.coefficient} for t in terms],
            "prompts_digest": prompts_digest,
            "decoding": asdict(settings),
            "package_version": __version__,
        }
        records = [
            {**label, "index": i, "prompt": p, "response": g.text, "num_tokens": g.num_tokens, "finish_reason": g.finish_reason, "provenance": provenance}
            for i, (p, g) in enumerate(zip(prompts, gens))
        ]
        write_jsonl(cached, records)
        write_jsonl(out, records)
        log.info("%s: %d responses, %d tokens", label, len(gens), sum(g.num_tokens for g in gens))
