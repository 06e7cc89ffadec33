"""Write the perturbed-checkpoint artifact of every grid point along one direction."""

from safety_landscape.directions import read_direction_metadata
from safety_landscape.io import log_to_file, read_json
from safety_landscape.points import Term, write_point

log_to_file(snakemake.log[0])
model_digest = read_json(snakemake.input.model)["digest"]
direction = snakemake.input.direction
digest = read_direction_metadata(direction)["content_digest"]
for a, out in zip(snakemake.params.coefficients, snakemake.output, strict=True):
    write_point(out, [Term(direction, digest, a)], model_digest, snakemake.params.form)
