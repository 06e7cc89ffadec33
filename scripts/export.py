"""Export one grid point as a full HF checkpoint folder or as a dense safetensors delta."""

from safety_landscape.io import log_to_file, read_json
from safety_landscape.points import export_checkpoint, read_point, write_point

log_to_file(snakemake.log[0])
model = read_json(snakemake.input.model)
terms, _ = read_point(f"{snakemake.input.points}/{snakemake.wildcards.point}.safetensors")
out = snakemake.output[0]
if out.endswith(".safetensors"):
    write_point(out, terms, model["digest"], "dense")
else:
    export_checkpoint(model["path"], terms, out, snakemake.params.trust_remote_code)
