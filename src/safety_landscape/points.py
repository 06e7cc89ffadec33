"""Materialize stage: one perturbed-checkpoint artifact per grid point, as a safetensors delta.

The factored form stores only the coefficients and the digests of the direction folders it combines
(a few KB whatever the model size); the dense form stores the delta tensors sum_i c_i * d_i.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .directions import CheckpointReader, Direction, read_direction_digest
from .io import atomic_folder, atomic_path, read_cache_entry, sha256_json, write_cache_entry

log = logging.getLogger(__name__)

FORMS = ("factored", "dense")


@dataclass(frozen=True)
class Term:
    direction: str  # path of the direction folder
    digest: str  # its content digest
    coefficient: float


def check_terms(terms: Sequence[Term]) -> None:
    for term in terms:
        recorded = read_direction_digest(term.direction)
        if recorded != term.digest:
            raise ValueError(
                f"{term.direction} changed (digest {recorded[:12]} != {term.digest[:12]}); rerun the directions rule"
            )


def write_point(path: str | os.PathLike, terms: list[Term], model_digest: str, form: str) -> None:
    """Write the point artifact theta + sum(c_i d_i) in the chosen form, atomically."""
    if form not in FORMS:
        raise ValueError(f"landscape.materialize: {form!r} is not one of {FORMS}")
    check_terms(terms)
    if form == "factored":
        tensors = {"coefficients": torch.tensor([t.coefficient for t in terms], dtype=torch.float64)}
    else:
        tensors = dense_delta(terms)
    meta = {"form": form, "model_digest": model_digest, "terms": json.dumps([t.__dict__ for t in terms])}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def dense_delta(terms: Sequence[Term]) -> dict[str, torch.Tensor]:
    """sum_i c_i * d_i per tensor, accumulated in float32 and stored in the directions' dtype."""
    delta: dict[str, torch.Tensor] = {}
    dtypes: dict[str, torch.dtype] = {}
    for term in terms:
        for name, d in Direction(term.direction):
            dtypes[name] = d.dtype
            delta[name] = delta.get(name, 0) + term.coefficient * d.to(torch.float32)
    return {name: t.to(dtypes[name]).contiguous() for name, t in delta.items()}


LABEL_KEYS = ("landscape", "a", "b")


def point_key(model_digest: str, terms: Sequence[Term], **identity) -> str:
    """Cache key of a result at a point: the model, the nonzero (direction digest, coefficient) terms,
    and whatever else makes the result (prompts and decoding, a capability task, ...)."""
    nonzero = sorted((t.digest, t.coefficient) for t in terms if t.coefficient != 0.0)
    return sha256_json({"model": model_digest, "terms": nonzero, **identity})


def job_results(
    points_dir: str | os.PathLike,
    job: Sequence[dict],
    model_digest: str,
    cache_file: Callable[[list[Term]], Path],
    compute: Callable[[list[Term]], Any],
) -> Iterator[tuple[dict, Any]]:
    """Each point of a generation job (dicts with the point's file `name` and its label: landscape,
    a[, b]) with its result: read from the cache entry `cache_file(terms)` when it is there and intact,
    else computed and cached at once, so an interrupted job resumes at the first point it had not finished."""
    for point in job:
        label = {key: value for key, value in point.items() if key != "name"}
        terms, meta = read_point(Path(points_dir) / f"{point['name']}.safetensors")
        if meta["model_digest"] != model_digest:
            raise ValueError(f"{points_dir}/{point['name']}.safetensors was made for another model; rerun the materialize rule")
        cached = cache_file(terms)
        result = read_cache_entry(cached)
        if result is not None:
            log.info("%s: reusing cached %s", label, cached.name)
        else:
            result = compute(terms)
            write_cache_entry(cached, result)
        yield label, result


def read_point(path: str | os.PathLike) -> tuple[list[Term], dict]:
    """Terms and metadata of a point artifact."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    return [Term(**t) for t in json.loads(meta["terms"])], meta


OFFLOADS = ("none", "cpu", "disk")


def combine(w0: torch.Tensor, update: Sequence[tuple[torch.Tensor, float]], device) -> torch.Tensor:
    """W0 + c1 d1 + c2 d2 + ... on `device`, left to right in float32, returned in W0's dtype (W0 itself when no update)."""
    if not update:
        return w0
    acc = w0.to(device=device, dtype=torch.float32, non_blocking=True)
    for d, c in update:
        acc = acc + c * d.to(device=device, dtype=torch.float32, non_blocking=True)
    return acc.to(w0.dtype)


class OriginalWeights:
    """W0 per tensor name, kept where `offload` says: a copy on `device` ("none"), a copy in pinned
    host memory ("cpu"), or nothing: `read` again at every use ("disk")."""

    def __init__(self, read: Callable[[str], torch.Tensor], device, offload: str):
        if offload not in OFFLOADS:
            raise ValueError(f"generation.offload: {offload!r} is not one of {OFFLOADS}")
        self.read, self.device, self.offload = read, torch.device(device), offload
        self.kept: dict[str, torch.Tensor] = {}

    def __getitem__(self, name: str) -> torch.Tensor:
        if self.offload == "disk":
            return self.read(name)
        if name not in self.kept:
            w0 = self.read(name)
            if self.offload == "cpu":
                w0 = w0.to("cpu", copy=True)
                self.kept[name] = w0.pin_memory() if self.device.type == "cuda" else w0
            else:
                self.kept[name] = w0.to(self.device, copy=True)
        return self.kept[name]


def perturbed_tensors(
    terms: Sequence[tuple[Mapping[str, torch.Tensor], float]], restore: set[str], original: OriginalWeights, device
) -> tuple[set[str], Iterator[tuple[str, torch.Tensor]]]:
    """The tensors of a grid point: W0 + sum_i c_i d_i for every tensor a direction touches, and W0 for
    the tensors in `restore` (perturbed at the previous point). Returns (the touched names, the tensors)."""
    touched = {name for tensors, _ in terms for name in tensors.keys()}
    names = sorted(touched | restore)

    def tensors() -> Iterator[tuple[str, torch.Tensor]]:
        for name in names:
            update = [(t[name], c) for t, c in terms if c != 0.0 and name in t.keys()]
            yield name, combine(original[name], update, device)

    return touched, tensors()


class Perturber:
    """Sets W = W0 + sum_i c_i d_i from the original weights W0 every time (float32 accumulation).

    `offload` says where W0 is kept: "none" copies it on the model's device, "cpu" in (pinned) host
    memory, "disk" reads it back from the checkpoint folder `checkpoint` tensor by tensor. Each
    tensor is combined on the model's device, so the device holds only the model and a few tensors
    beyond what the direction store keeps there.
    """

    def __init__(self, model, offload: str = "none", checkpoint: str | None = None):
        if offload == "disk" and checkpoint is None:
            raise ValueError("offload 'disk' needs the model's checkpoint folder")
        self.params = dict(model.named_parameters())
        self.device = model.device
        if offload == "disk":
            reader = CheckpointReader(checkpoint)
            read = lambda name: reader.get(name).to(self.params[name].dtype)  # noqa: E731
        else:
            read = lambda name: self.params[name].detach()  # noqa: E731
        self.original = OriginalWeights(read, self.device, offload)
        self.touched: set[str] = set()

    def set(self, terms: Sequence[tuple[Mapping[str, torch.Tensor], float]]) -> None:
        unknown = {name for tensors, _ in terms for name in tensors.keys()} - self.params.keys()
        if unknown:
            raise KeyError(
                f"direction tensors {sorted(unknown)[:5]} are not parameters of the model; "
                "regenerate the directions for this model"
            )
        touched, tensors = perturbed_tensors(terms, self.touched, self.original, self.device)
        with torch.no_grad():
            for name, value in tensors:
                self.params[name].copy_(value, non_blocking=True)
        self.touched = touched


class DirectionStore:
    """Direction tensors of a job: loaded once onto the device ("none"), into pinned host memory
    ("cpu"), or read from disk tensor by tensor at every update ("disk")."""

    def __init__(self, device, offload: str = "none"):
        self.device, self.offload = device, offload
        self.loaded: dict[str, Mapping[str, torch.Tensor]] = {}

    def get(self, term: Term) -> Mapping[str, torch.Tensor]:
        if term.digest not in self.loaded:
            direction = Direction(term.direction)
            if direction.digest != term.digest:
                raise ValueError(f"{term.direction} no longer matches the point's digest; rerun the materialize rule")
            self.loaded[term.digest] = self._place(direction)
        return self.loaded[term.digest]

    def _place(self, direction: Direction) -> Mapping[str, torch.Tensor]:
        if self.offload == "disk":
            return LazyTensors(direction)
        if self.offload == "cpu":
            pin = str(self.device).startswith("cuda")
            return {name: t.pin_memory() if pin else t for name, t in direction}
        return {name: direction.get(name, str(self.device)) for name in direction.names}


class LazyTensors(Mapping):
    """Read-only mapping that loads each tensor of a direction from disk when asked for."""

    def __init__(self, direction: Direction):
        self.direction = direction

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.direction.get(name)

    def __iter__(self):
        return iter(self.direction.names)

    def __len__(self) -> int:
        return len(self.direction.names)


def export_checkpoint(model_dir: str, terms: Sequence[Term], out_dir: str | os.PathLike, trust_remote_code: bool = False) -> None:
    """Write the model at a grid point as a full HF safetensors folder (loadable by transformers and vLLM)."""
    from .modeling import load_model, load_tokenizer

    check_terms(terms)
    model = load_model(model_dir, "auto", "cpu", trust_remote_code)
    store = DirectionStore("cpu", "disk")
    Perturber(model).set([(store.get(t), t.coefficient) for t in terms])
    with atomic_folder(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        load_tokenizer(model_dir, trust_remote_code).save_pretrained(tmp)
