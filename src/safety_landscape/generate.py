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
from .engine import render_prompts
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


def response_cache_key(model_digest: str, terms: Sequence[Term], prompts_digest: str, settings: DecodingSettings) -> str:
    """Identity of a point's responses: weights (model + nonzero terms), prompts and decoding settings."""
    nonzero = sorted((t.digest, t.coefficient) for t in terms if t.coefficient != 0.0)
    return sha256_json({"model": model_digest, "terms": nonzero, "prompts": prompts_digest, "decoding": settings.cache_fields()})


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
        cached = Path(cache_dir) / f"{response_cache_key(model_digest, terms, prompts_digest, settings)}.jsonl"
        if cached.is_file():
            log.info("%s: reusing cached responses %s", label, cached.name)
            with atomic_path(out) as tmp:
                shutil.copyfile(cached, tmp)
            continue
        start = time.perf_counter()
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
