"""Generate one direction (random or interpolation), streamed tensor by tensor into shards."""

import torch

from safety_landscape import __version__
from safety_landscape.directions import CheckpointReader, Direction, interpolation_source, random_source, write_direction
from safety_landscape.io import log_to_file, read_json

log_to_file(snakemake.log[0])
torch.set_num_threads(1)  # the job's threads draw tensors in parallel instead
p = snakemake.params
axis = p.axis
model = read_json(snakemake.input.model)
weights = CheckpointReader(model["path"])
if axis["kind"] == "random":
    source, exclude = random_source(axis["seed"], p.normalization), p.exclude
else:
    source, exclude = interpolation_source(CheckpointReader(read_json(snakemake.input.endpoint[0])["path"])), []
metadata = {
    "name": axis["name"],
    "kind": axis["kind"],
    "seed": axis["seed"],
    "endpoint": axis["endpoint"],
    "endpoint_digest": read_json(snakemake.input.endpoint[0])["digest"] if axis["kind"] != "random" else None,
    "normalization": p.normalization if axis["kind"] == "random" else "none",
    "exclude_patterns": exclude,
    "dtype": p.dtype,
    "model_digest": model["digest"],
    "package_version": __version__,
}
partner = Direction(snakemake.input.partner[0]) if snakemake.input.partner else None
write_direction(
    snakemake.output[0],
    weights,
    source,
    exclude,
    getattr(torch, p.dtype),
    p.shard_mb << 20,
    metadata,
    partner,
    axis["orthogonalize"],
    workers=snakemake.threads,
)
