"""Generate stage: set the weights to theta + sum(c_i d_i) exactly and greedy-decode the prompts.

The engine (and its model) loads once per job; every point is computed from the original weights (never
accumulated). Each finished point goes to a content-addressed cache at once, so an interrupted job
resumes without regenerating finished points; the job's file, one record per (point, prompt)
labelled with its landscape and coordinates, is written when every point is done.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from . import __version__
from .decoding import render_prompts
from .engines import EngineOptions, open_engine
from .gpus import claim_gpus, visible_gpus
from .io import read_cache_entry, sha256_json, write_cache_entry
from .modeling import resolve_device, resolve_dtype
from .points import LABEL_KEYS, Term, job_results, point_key
from .provenance import code_digest, engine_code_digest

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


def generation_code_digest(settings: DecodingSettings) -> str:
    """Digest of the code that generates responses (a custom engine's module included); the refusal
    keywords count only when they stop decoding."""
    package = code_digest("generate", ignore=() if settings.stop_on_refusal else ("refusals",))
    return sha256_json([package, engine_code_digest(settings.engine)])


def response_cache_key(model_digest: str, terms: Sequence[Term], prompts_digest: str, settings: DecodingSettings) -> str:
    """Identity of a point's responses: weights (model + nonzero terms), prompts, decoding settings and
    the code that generates them."""
    code = generation_code_digest(settings)
    return point_key(model_digest, terms, prompts=prompts_digest, decoding=settings.cache_fields(), code=code)


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
        max_new_tokens=gen["max_new_tokens"],
        batch_size=gen["batch_size"],
        system_prompt=gen["system_prompt"],
        chat_template=gen["chat_template"],
        stop_on_refusal=gen["stop_on_refusal"],
        dtype=dtype,
        engine=gen["engine"],
    )
    options = EngineOptions(
        model_path=model_path,
        dtype=dtype,
        device=device,
        offload=gen["offload"],
        trust_remote_code=trust_remote_code,
        tensor_parallel_size=gen["tensor_parallel_size"],
        max_model_len=gen["max_model_len"],
    )
    return open_engine(gen["engine"], options), settings


def job_records(
    engine,
    model_digest: str,
    prompts: list[str],
    prompts_digest: str,
    settings: DecodingSettings,
    points_dir: str | os.PathLike,
    job: Sequence[dict],
    cache_dir: str | os.PathLike,
    prompt_fields: Sequence[dict] | None = None,
) -> list[dict]:
    """Greedy responses at every point of one generation job (see points.job_results), every record
    labelled with its landscape and coordinates (and with its prompt's `prompt_fields`, e.g. a contextual
    behaviour's behavior and context); points generated before come from the cache."""
    prompt_ids = render_prompts(engine.tokenizer, prompts, settings.system_prompt, settings.chat_template)
    cache_dir = Path(cache_dir)

    def respond(terms: list[Term]) -> list[dict]:
        return generate_records(engine, model_digest, terms, prompts, prompt_ids, prompts_digest, settings, prompt_fields)

    def cache_file(terms: list[Term]) -> Path:
        return cache_dir / f"{response_cache_key(model_digest, terms, prompts_digest, settings)}.json"

    records = []
    for done, (label, result) in enumerate(job_results(points_dir, job, model_digest, cache_file, respond), start=1):
        records += [{key: value for key, value in r.items() if key not in LABEL_KEYS} | label for r in result]
        log.info("point %d of %d done (%s)", done, len(job), ", ".join(f"{key} {value}" for key, value in label.items()))
    return records


def generate_unperturbed(
    engine,
    model_digest: str,
    prompts: list[str],
    prompts_digest: str,
    settings: DecodingSettings,
    cache_dir: str | os.PathLike,
    label: dict,
) -> list[dict]:
    """Responses of the engine's model as loaded (a checkpoint evaluated on a prompt set), cached like a
    point's, each record labelled with `label` (checkpoint and evaluation set)."""
    cached = Path(cache_dir) / f"{response_cache_key(model_digest, [], prompts_digest, settings)}.json"
    records = read_cache_entry(cached)
    if records is not None:
        log.info("%s: reusing cached responses %s", label, cached.name)
    else:
        prompt_ids = render_prompts(engine.tokenizer, prompts, settings.system_prompt, settings.chat_template)
        records = generate_records(engine, model_digest, [], prompts, prompt_ids, prompts_digest, settings)
        write_cache_entry(cached, records)
    return [r | label for r in records]


def generate_records(
    engine,
    model_digest: str,
    terms: Sequence[Term],
    prompts: list[str],
    prompt_ids: list[list[int]],
    prompts_digest: str,
    settings: DecodingSettings,
    prompt_fields: Sequence[dict] | None = None,
) -> list[dict]:
    """Greedy responses at theta + sum(terms), one record per prompt with the provenance of the answers
    (and the prompt's `prompt_fields`, when given)."""
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
        "code_digest": generation_code_digest(settings),
    }
    tokens, seconds = sum(g.num_tokens for g in gens), max(time.perf_counter() - updated, 1e-6)
    log.info(
        "%d responses, %d tokens in %.2f s (%.1f tokens/s), weight update %.2f s",
        len(gens),
        tokens,
        seconds,
        tokens / seconds,
        updated - start,
    )
    return [
        {
            "index": i,
            "prompt": p,
            **(prompt_fields[i] if prompt_fields else {}),
            "response": g.text,
            "num_tokens": g.num_tokens,
            "finish_reason": g.finish_reason,
            "provenance": provenance,
        }
        for i, (p, g) in enumerate(zip(prompts, gens))
    ]
