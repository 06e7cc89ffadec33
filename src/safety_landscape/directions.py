"""Directions stage: directions in weight space, generated tensor by tensor into sharded safetensors.

A direction is a folder: `shard-NNNNN.safetensors` files plus `direction.json` (metadata, the
shard of every tensor, per-tensor digests and the content digest). Generation streams: it holds
one weight tensor, its direction tensor and one output shard at a time, never the whole model.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import re
import shutil
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import torch
from safetensors import SafetensorError, safe_open

from .io import atomic_folder, atomic_path, read_json, sha256_json, write_json

log = logging.getLogger(__name__)

NORMALIZATIONS = ("layer", "filter", "none")
INDEX = "direction.json"
PROGRESS = "progress.json"  # in the partial folder while a direction is written


def tensor_seed(seed: int, name: str) -> int:
    """Seed of one tensor's draw, derived from (seed, tensor name) so any tensor can be regenerated alone."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{name}".encode()).digest()[:8], "little") & ((1 << 63) - 1)


def is_excluded(name: str, patterns: Sequence[str]) -> bool:
    return any(re.search(p, name) for p in patterns)


def _raw_bytes(tensor: torch.Tensor) -> memoryview:
    """The tensor's bytes without a copy (any dtype, bf16 included)."""
    return memoryview(tensor.detach().contiguous().cpu().reshape(-1).view(torch.uint8).numpy())


def tensor_digest(tensor: torch.Tensor) -> str:
    h = hashlib.sha256(f"{tensor.dtype}|{tuple(tensor.shape)}|".encode())
    h.update(_raw_bytes(tensor))
    return h.hexdigest()


_SAFETENSORS_DTYPES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16", torch.float64: "F64"}


def write_safetensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor]) -> None:
    """Write a safetensors file tensor by tensor from the tensors' own memory.

    `safetensors.torch.save_file` first copies every tensor into a bytes object, which doubles the
    memory of a shard; the format (8-byte header size, JSON header, raw little-endian data) lets us
    stream instead. Files are read back with `safetensors.safe_open` like any other."""
    header, offset = {}, 0
    for name, t in tensors.items():
        size = t.numel() * t.element_size()
        header[name] = {"dtype": _SAFETENSORS_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as f:
        f.write(len(encoded).to_bytes(8, "little"))
        f.write(encoded)
        for t in tensors.values():
            f.write(_raw_bytes(t))


def content_digest(tensor_digests: dict[str, str]) -> str:
    """Digest of a direction from its per-tensor digests (independent of shard layout and order)."""
    return sha256_json(tensor_digests)


class CheckpointReader:
    """Random and sequential access to the tensors of a safetensors folder, one tensor at a time."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        files = sorted(self.folder.glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(f"{folder} holds no *.safetensors files")
        self.location: dict[str, Path] = {}
        for file in files:
            with safe_open(str(file), framework="pt") as f:
                self.location.update({name: file for name in f.keys()})

    @property
    def names(self) -> list[str]:
        return list(self.location)

    def get(self, name: str, device: str = "cpu") -> torch.Tensor:
        with safe_open(str(self.location[name]), framework="pt", device=device) as f:
            return f.get_tensor(name)

    def __iter__(self) -> Iterator[tuple[str, torch.Tensor]]:
        # One file mapping per tensor keeps resident memory at one tensor, not one input shard.
        for name in self.location:
            yield name, self.get(name)


class Direction(CheckpointReader):
    """A stored direction: its tensors, metadata and digests."""

    def __init__(self, folder: str | os.PathLike):
        index_path = Path(folder) / INDEX
        if not index_path.is_file():
            raise FileNotFoundError(f"{folder} is not a direction (no {INDEX}); rerun the directions rule")
        super().__init__(folder)
        self.index = read_json(index_path)
        self.metadata: dict = self.index["metadata"]
        self.digest: str = self.index["content_digest"]


def read_direction_digest(folder: str | os.PathLike) -> str:
    return read_json(Path(folder) / INDEX)["content_digest"]


class ShardWriter:
    """Writes named tensors into shards of at most `max_bytes` (one shard in memory) in an existing
    folder, then the index.

    Each finished shard is recorded, with the digests of its tensors, in the folder's progress file.
    A writer whose `identity` (a digest of everything that makes the tensors) is the one recorded
    there resumes the folder: it keeps the recorded shards up to the first one whose tensors do not
    all match their digests (`holds` says which tensors they hold), and deletes everything else."""

    def __init__(self, folder: str | os.PathLike, max_bytes: int, identity: str):
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.identity = identity
        self.buffer: dict[str, torch.Tensor] = {}
        self.buffered = 0
        self.finished = self._verified_shards()
        self.kept = {name for shard in self.finished for name in shard["tensors"]}
        self.weight_map = {name: shard["file"] for shard in self.finished for name in shard["tensors"]}
        self.digests = {name: digest for shard in self.finished for name, digest in shard["tensors"].items()}
        self._delete_all_but_finished()
        if self.finished:
            log.info("%s: resuming after %d verified shard(s) of an interrupted run", self.folder, len(self.finished))

    def _verified_shards(self) -> list[dict]:
        try:
            progress = read_json(self.folder / PROGRESS)
        except (FileNotFoundError, ValueError):
            return []
        if progress.get("identity") != self.identity:
            return []
        return list(itertools.takewhile(self._intact, progress["shards"]))

    def _intact(self, shard: dict) -> bool:
        """Whether a recorded shard holds exactly its tensors, each matching its digest."""
        try:
            with safe_open(str(self.folder / shard["file"]), framework="pt") as f:
                return set(f.keys()) == set(shard["tensors"]) and all(
                    tensor_digest(f.get_tensor(name)) == digest for name, digest in shard["tensors"].items()
                )
        except (OSError, SafetensorError):
            return False

    def _delete_all_but_finished(self) -> None:
        keep = {shard["file"] for shard in self.finished}
        for entry in self.folder.iterdir():
            if entry.is_dir():
                shutil.rmtree(entry)
            elif entry.name not in keep:
                entry.unlink()
        self._record_progress()

    def _record_progress(self) -> None:
        write_json(self.folder / PROGRESS, {"identity": self.identity, "shards": self.finished})

    def holds(self, name: str) -> bool:
        """Whether tensor `name` is in a shard kept from an interrupted run (then it is not added again)."""
        return name in self.kept

    def add(self, name: str, tensor: torch.Tensor) -> None:
        tensor = tensor.contiguous()
        size = tensor.numel() * tensor.element_size()
        if self.buffer and self.buffered + size > self.max_bytes:
            self._flush()
        self.buffer[name] = tensor
        self.buffered += size
        self.digests[name] = tensor_digest(tensor)

    def _flush(self) -> None:
        """Write the buffered tensors as the next shard, then record it as finished."""
        shard = f"shard-{len(self.finished) + 1:05d}.safetensors"
        with atomic_path(self.folder / shard) as tmp:
            write_safetensors(tmp, self.buffer)
        self.finished.append({"file": shard, "tensors": {name: self.digests[name] for name in self.buffer}})
        self._record_progress()
        self.weight_map.update({name: shard for name in self.buffer})
        self.buffer, self.buffered = {}, 0

    def close(self, metadata: dict) -> str:
        """Write the last shard and the index (the progress file goes); returns the content digest."""
        if not self.buffer and not self.weight_map:
            raise ValueError("landscape.exclude_patterns: every tensor is excluded; the direction would be empty")
        if self.buffer:
            self._flush()
        digest = content_digest(self.digests)
        write_json(
            self.folder / INDEX,
            {"metadata": metadata, "content_digest": digest, "weight_map": self.weight_map, "tensor_digests": self.digests},
        )
        (self.folder / PROGRESS).unlink()
        return digest


def normalize(direction: torch.Tensor, weight: torch.Tensor, mode: str) -> torch.Tensor:
    """Scale a direction tensor in place to the weight's norm: whole tensor ("layer"), per output row ("filter"),
    or not at all."""
    if mode == "none":
        return direction
    if mode == "layer" or direction.ndim < 2:
        return direction.mul_(weight.norm(dtype=torch.float32) / direction.norm())
    dims = tuple(range(1, direction.ndim))
    return direction.mul_(weight.norm(dim=dims, keepdim=True, dtype=torch.float32) / direction.norm(dim=dims, keepdim=True))


def random_tensor(name: str, weight: torch.Tensor, seed: int, normalization: str) -> torch.Tensor:
    """The float32 random direction of one tensor, normalized against its weight."""
    gen = torch.Generator().manual_seed(tensor_seed(seed, name))
    return normalize(torch.randn(weight.shape, generator=gen, dtype=torch.float32), weight, normalization)


TensorSource = Callable[[str, torch.Tensor], torch.Tensor]


def random_source(seed: int, normalization: str) -> TensorSource:
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"landscape.normalization: {normalization!r} is not one of {NORMALIZATIONS}")
    return lambda name, weight: random_tensor(name, weight, seed, normalization)


def interpolation_source(endpoint: CheckpointReader) -> TensorSource:
    """d = theta' - theta per tensor (not normalized)."""

    def diff(name: str, weight: torch.Tensor) -> torch.Tensor:
        if name not in endpoint.location:
            raise KeyError(
                f"landscape.endpoints: {endpoint.folder} has no tensor {name!r}; endpoints must share the model's architecture"
            )
        other = endpoint.get(name)
        if other.shape != weight.shape:
            raise ValueError(
                f"landscape.endpoints: {name} has shape {tuple(other.shape)} in {endpoint.folder}, "
                f"{tuple(weight.shape)} in the model"
            )
        return other.to(torch.float32) - weight.to(torch.float32)

    return diff


def _selected(weights: Iterable[tuple[str, torch.Tensor]], exclude: Sequence[str]) -> Iterator[tuple[str, torch.Tensor]]:
    return ((n, w) for n, w in weights if w.is_floating_point() and not is_excluded(n, exclude))


def gram_schmidt_coefficient(
    weights: CheckpointReader, source: TensorSource, exclude: Sequence[str], previous: Direction
) -> tuple[float, float]:
    """(<d, p> / <p, p>, cosine(d, p)) for the direction d of `source` and a stored direction p, streamed."""
    dot = dd = pp = 0.0
    for name, weight in _selected(weights, exclude):
        d = source(name, weight).double()
        p = previous.get(name).double() if name in previous.location else torch.zeros_like(d)
        dot += float((d * p).sum())
        dd += float((d * d).sum())
        pp += float((p * p).sum())
    return dot / pp, dot / (dd * pp) ** 0.5


def write_direction(
    out: str | os.PathLike,
    weights: CheckpointReader,
    source: TensorSource,
    exclude: Sequence[str],
    dtype: torch.dtype,
    shard_bytes: int,
    metadata: dict,
    partner: Direction | None = None,
    orthogonalize: bool = False,
    workers: int = 1,
) -> str:
    """Stream `source` over the model's tensors into a sharded direction folder; returns its digest.

    `workers` tensors are computed at once (each from its own seed, so the result is the same bit for
    bit for any number of workers); memory holds at most `workers` tensors and one shard.

    With a `partner` (the other direction of a plane) the cosine between the two is recorded in the
    metadata, and with `orthogonalize` the direction is made orthogonal to the partner (Gram-Schmidt
    over the whole weight vector).

    The shards are written into `<out>.partial`, which replaces `out` when the direction is complete.
    A write that was interrupted (killed, disk full) keeps its finished shards there, and the next call
    with the same metadata, exclusions, dtype, shard size and partner reuses those that verify against
    their recorded digests; the metadata must therefore tell apart whatever `source` depends on (the
    workflow's names the model digest, the seed and normalization, or the endpoint).
    """
    coefficient = 0.0
    if partner is not None:
        projection, cosine_value = gram_schmidt_coefficient(weights, source, exclude, partner)
        metadata = metadata | {"cosine_with": partner.metadata.get("name"), "cosine": cosine_value}
        if orthogonalize:
            coefficient = projection
            metadata["gram_schmidt_coefficient"] = coefficient
    elif orthogonalize:
        raise ValueError("landscape.orthogonalize needs a partner direction to orthogonalize against")
    identity = sha256_json(
        {
            "metadata": metadata,
            "exclude": list(exclude),
            "dtype": str(dtype),
            "shard_bytes": shard_bytes,
            "partner": partner.digest if partner is not None else None,
            "orthogonalize": orthogonalize,
        }
    )

    def tensor(name: str, weight: torch.Tensor) -> torch.Tensor:
        d = source(name, weight)
        if coefficient:
            d = d - coefficient * partner.get(name).to(torch.float32)
        return d.to(dtype)

    with atomic_folder(out, keep_partial=True) as tmp:
        writer = ShardWriter(tmp, shard_bytes, identity)
        todo = ((name, weight) for name, weight in _selected(weights, exclude) if not writer.holds(name))
        for name, d in _computed_in_order(todo, tensor, workers):
            writer.add(name, d)
        return writer.close(metadata)


def _computed_in_order(
    items: Iterable[tuple[str, torch.Tensor]], compute: Callable[[str, torch.Tensor], torch.Tensor], workers: int
) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, compute(name, weight)) for every item, in order, with up to `workers` computed at once in
    threads (torch releases the GIL: random draws and norms of different tensors run in parallel, while
    one tensor's draw is a single sequential stream)."""
    if workers <= 1:
        yield from ((name, compute(name, weight)) for name, weight in items)
        return
    with ThreadPoolExecutor(workers) as pool:
        pending: deque = deque()
        for name, weight in items:
            pending.append((name, pool.submit(compute, name, weight)))
            if len(pending) >= workers:
                done_name, future = pending.popleft()
                yield done_name, future.result()
        while pending:
            done_name, future = pending.popleft()
            yield done_name, future.result()


def cosine(first: Direction, second: Direction) -> float:
    """Cosine between two stored directions over their common tensors, streamed."""
    dot = aa = bb = 0.0
    for name, a in first:
        a = a.double()
        b = second.get(name).double() if name in second.location else torch.zeros_like(a)
        dot += float((a * b).sum())
        aa += float((a * a).sum())
    for _, b in second:
        bb += float((b.double() ** 2).sum())
    return dot / (aa * bb) ** 0.5
