"""Materialize stage: one perturbed-checkpoint artifact per grid point, as a safetensors delta.

The factored form stores only the coefficients and the digests of the direction files it combines
(a few KB whatever the model size); the dense form stores the delta tensors sum_i c_i * d_i.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .directions import load_direction, read_direction_metadata
from .io import atomic_path

FORMS = ("factored", "dense")


def point_name(a: float) -> str:
    """File stem of a grid point along one axis, e.g. a+0.0500."""
    return f"a{a:+.4f}"


@dataclass(frozen=True)
class Term:
    direction: str  # path of the direction file
    digest: str  # its content digest
    coefficient: float


def write_point(path: str | os.PathLike, terms: list[Term], model_digest: str, form: str) -> None:
    """Write the point artifact theta + sum(c_i d_i) in the chosen form, atomically."""
    if form not in FORMS:
        raise ValueError(f"landscape.materialize: {form!r} is not one of {FORMS}")
    for term in terms:
        recorded = read_direction_metadata(term.direction)["content_digest"]
        if recorded != term.digest:
            raise ValueError(f"{term.direction} changed (digest {recorded[:12]} != {term.digest[:12]}); rerun the directions rule")
    if form == "factored":
        tensors = {"coefficients": torch.tensor([t.coefficient for t in terms], dtype=torch.float64)}
    else:
        tensors = dense_delta(terms)
    meta = {"form": form, "model_digest": model_digest, "terms": json.dumps([t.__dict__ for t in terms])}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def dense_delta(terms: list[Term]) -> dict[str, torch.Tensor]:
    """sum_i c_i * d_i per tensor, accumulated in float32 and stored in the directions' dtype."""
    delta: dict[str, torch.Tensor] = {}
    dtypes: dict[str, torch.dtype] = {}
    for term in terms:
        tensors, _ = load_direction(term.direction)
        for name, d in tensors.items():
            dtypes[name] = d.dtype
            delta[name] = delta.get(name, 0) + term.coefficient * d.to(torch.float32)
    return {name: t.to(dtypes[name]).contiguous() for name, t in delta.items()}


def read_point(path: str | os.PathLike) -> tuple[list[Term], dict]:
    """Terms and metadata of a point artifact."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    return [Term(**t) for t in json.loads(meta["terms"])], meta
