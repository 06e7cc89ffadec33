"""Directions stage: random directions in weight space, normalized per tensor, saved as safetensors."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .io import atomic_path

NORMALIZATIONS = ("layer", "filter", "none")


def tensor_seed(seed: int, name: str) -> int:
    """Seed of one tensor's draw, derived from (seed, tensor name) so any tensor can be regenerated alone."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{name}".encode()).digest()[:8], "little") & ((1 << 63) - 1)


def is_excluded(name: str, patterns: Sequence[str]) -> bool:
    return any(re.search(p, name) for p in patterns)


def iter_checkpoint_tensors(model_dir: str | os.PathLike) -> Iterator[tuple[str, torch.Tensor]]:
    """Stream (name, tensor) pairs from a folder's safetensors shards, one tensor in memory at a time."""
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{model_dir} holds no *.safetensors files")
    for file in files:
        with safe_open(str(file), framework="pt") as f:
            for name in f.keys():
                yield name, f.get_tensor(name)


def normalize(direction: torch.Tensor, weight: torch.Tensor, mode: str) -> torch.Tensor:
    """Scale a direction tensor to the weight's norm: whole tensor ("layer"), per output row ("filter"), or not at all."""
    w = weight.to(torch.float32)
    if mode == "none":
        return direction
    if mode == "layer" or direction.ndim < 2:
        return direction * (w.norm() / direction.norm())
    dims = tuple(range(1, direction.ndim))
    return direction * (w.norm(dim=dims, keepdim=True) / direction.norm(dim=dims, keepdim=True))


def random_direction(
    weights: Iterable[tuple[str, torch.Tensor]], seed: int, normalization: str, exclude: Sequence[str], dtype: torch.dtype = torch.float32
) -> dict[str, torch.Tensor]:
    """A Gaussian direction for every non-excluded floating tensor, normalized against its weight."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"landscape.normalization: {normalization!r} is not one of {NORMALIZATIONS}")
    direction = {}
    for name, weight in weights:
        if not weight.is_floating_point() or is_excluded(name, exclude):
            continue
        gen = torch.Generator().manual_seed(tensor_seed(seed, name))
        d = torch.randn(weight.shape, generator=gen, dtype=torch.float32)
        direction[name] = normalize(d, weight, normalization).to(dtype).contiguous()
    if not direction:
        raise ValueError("landscape.exclude_patterns: every tensor is excluded; the direction would be empty")
    return direction


def content_digest(tensors: dict[str, torch.Tensor]) -> str:
    """Digest of tensor names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_direction(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict) -> str:
    """Write a direction atomically; its metadata records provenance and the content digest, which is returned."""
    digest = content_digest(tensors)
    meta = {k: json.dumps(v) for k, v in metadata.items()} | {"content_digest": json.dumps(digest)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return digest


def read_direction_metadata(path: str | os.PathLike) -> dict:
    with safe_open(str(path), framework="pt") as f:
        return {k: json.loads(v) for k, v in (f.metadata() or {}).items()}


def load_direction(path: str | os.PathLike, device: str = "cpu") -> tuple[dict[str, torch.Tensor], dict]:
    with safe_open(str(path), framework="pt", device=device) as f:
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    return tensors, read_direction_metadata(path)
