"""Draw one random direction, normalized per tensor against the model's weights."""

import torch

from safety_landscape import __version__
from safety_landscape.directions import iter_checkpoint_tensors, random_direction, save_direction
from safety_landscape.io import log_to_file, read_json

log_to_file(snakemake.log[0])
p = snakemake.params
model = read_json(snakemake.input.model)
tensors = random_direction(iter_checkpoint_tensors(model["path"]), p.seed, p.normalization, p.exclude, getattr(torch, p.dtype))
save_direction(
    snakemake.output[0],
    tensors,
    {"kind": "random", "seed": p.seed, "normalization": p.normalization, "exclude_patterns": p.exclude,
     "dtype": p.dtype, "model_digest": model["digest"], "package_version": __version__},
)
