"""Write the perturbed-checkpoint artifact of every grid point of one landscape into its folder."""

from pathlib import Path

from safety_landscape.directions import read_direction_digest
from safety_landscape.io import log_to_file, read_json
from safety_landscape.points import Term, write_point

log_to_file(snakemake.log[0])
model_digest = read_json(snakemake.input.model)["digest"]
directions = [(d, read_direction_digest(d)) for d in snakemake.input.directions]
folder = Path(snakemake.output[0])
for name, coords in snakemake.params.points.items():
    terms = [Term(d, digest, c) for (d, digest), c in zip(directions, coords, strict=True)]
    write_point(folder / f"{name}.safetensors", terms, model_digest, snakemake.params.form)
