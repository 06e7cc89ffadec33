"""The sequential decisions of a run as one table."""

from safety_landscape.io import log_to_file, read_json, write_table
from safety_landscape.precision import decision_table

log_to_file(snakemake.log[0])
write_table(decision_table([read_json(path) for path in snakemake.input]), snakemake.output[0])
