"""Coordinates of one checkpoint on the landscape's line or plane, and its distance off it."""

from safety_landscape.directions import CheckpointReader, Direction
from safety_landscape.io import log_to_file, read_json, write_json
from safety_landscape.projection import project_checkpoint

log_to_file(snakemake.log[0])
theta = CheckpointReader(read_json(snakemake.input.model)["path"])
checkpoint = CheckpointReader(read_json(snakemake.input.checkpoint)["path"])
result = project_checkpoint(theta, checkpoint, [Direction(d) for d in snakemake.input.directions])
write_json(snakemake.output[0], result | {"checkpoint": snakemake.params.checkpoint, "landscape": snakemake.params.landscape})
