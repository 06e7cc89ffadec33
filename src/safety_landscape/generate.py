"""Generate stage: set the weights to theta + sum(c_i d_i) exactly and greedy-decode the prompts.

The engine (and its model) loads once per job; every point is computed from the original weights (never
accumulated), and each finished point is written at once, both to its output file and to a
content-addressed cache, so an interrupted job resumes without regenerating finished points.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from . import __version__
from .decoding import render_prompts
from .engines import EngineOptions, open_engine
from .gpus import claim_gpus, visible_gpus
from .io import atomic_path, sha256_json, write_jsonl
from .modeling import resolve_device, resolve_dtype
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


def response_cache_key(model_digest: str, terms: Sequence[Term], prompts_digest: str, settings: DecodingSettings) -> str:
    """Identity of a point's responses: weights (model + nonzero terms), prompts and decoding settings."""
    nonzero = sorted((t.digest, t.coefficient) for t in terms if t.coefficient != 0.0)
    return sha256_json({"model": model_digest, "terms": nonzero, "prompts": prompts_digest, "decoding": settings.cache_fields()})


def claim_generation_gpus(gen: dict, gpu_locks_dir: str) -> list:
    """Claim the GPUs of one job per the `generation` config, before CUDA starts; hold the returned
    locks until the job ends."""
    if gen["device"] not in ("auto", "cuda"):
        return []
    gpus = [str(g) for g in gen["gpus"]] if gen["gpus"] is not None else visible_gpus()
    return claim_gpus(gen["tensor_parallel_size"], gpus, gpu_locks_dir) if gpus else []


def open_generation(gen: dict, model_path: str, trust_remote_code: bool) -> tuple[object, DecodingSettings]:
    """The engine and decoding settings of the `generation` config for one model."""
    device = resolve_device(gen["device"])
    dtype = resolve_dtype(gen["dtype"], device)
    settings = DecodingSettings(
        max_new_tokens=gen["max_new_tokens"], batch_size=gen["batch_size"], system_prompt=gen["system_prompt"],
        chat_template=gen["chat_template"], stop_on_refusal=gen["stop_on_refusal"], dtype=dtype, engine=gen["engine"],
    )
    options = EngineOptions(
        model_path=model_path, dtype=dtype, device=device, offload=gen["offload"], trust_remote_code=trust_remote_code,
        tensor_parallel_size=gen["tensor_parallel_size"], max_model_len=gen["max_model_len"],
    )
    return open_engine(gen["engine"], options), settings


def generate_points(
    engine,
    model_digest: str,
    prompts: list[str],
    prompts_digest: str,
    settings: DecodingSettings,
    point_files: Sequence[str],
    output_files: Sequence[str],
    cache_dir: str | os.PathLike,
    point_labels: Sequence[dict],
) -> None:
    """Write one responses JSONL per point with `engine` (see engines.py), reusing the cache for points generated before."""
    prompt_ids = render_prompts(engine.tokenizer, prompts, settings.system_prompt, settings.chat_template)
    for point_file, out, label in zip(point_files, output_files, point_labels, strict=True):
        terms, meta = read_point(point_file)
        if meta["model_digest"] != model_digest:
            raise ValueError(f"{point_file} was made for another model; rerun the materialize rule")
        write_responses(engine, model_digest, terms, prompts, prompt_ids, prompts_digest, settings, out, cache_dir, label)


def generate_unperturbed(
    engine, model_digest: str, prompts: list[str], prompts_digest: str, settings: DecodingSettings,
    output_file: str, cache_dir: str | os.PathLike, label: dict,
) -> None:
    """Responses of the engine's model as loaded (a checkpoint evaluated on a prompt set), cached like a point's."""
    prompt_ids = render_prompts(engine.tokenizer, prompts, settings.system_prompt, settings.chat_template)
    write_responses(engine, model_digest, [], prompts, prompt_ids, prompts_digest, settings, output_file, cache_dir, label)


def write_responses(
    engine, model_digest: str, terms: Sequence[Term], prompts: list[str], prompt_ids: list[list[int]], prompts_digest: str,
    settings: DecodingSettings, out: str, cache_dir: str | os.PathLike, label: dict,
) -> None:
    """Greedy responses at theta + sum(terms) to `out` and to the cache; a cached copy is reused instead."""
    cached = Path(cache_dir) / f"{response_cache_key(model_digest, terms, prompts_digest, settings)}.jsonl"
    if cached.is_file():
        log.info("%s: reusing cached responses %s", label, cached.name)
        with atomic_path(out) as tmp:
            shutil.copyfile(cached, tmp)
        return
    start = time.perf_counter()
    if terms:
        engine.set_point(terms)
    updated = time.perf_counter()
    gens = engine.generate(prompt_ids, settings.max_new_tokens, settings.batch_size, settings.stop_on_refusal)
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
    log.info(
        "%s: %d responses, %d tokens, update %.2f s, generation %.2f s",
        label, len(gens), sum(g.num_tokens for g in gens), updated - start, time.perf_counter() - updated,
    )
