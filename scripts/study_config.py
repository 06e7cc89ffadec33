"""Write one run's complete config of a study (shared settings + the run's own), atomically."""

import yaml

from safety_landscape.io import log_to_file, write_text

log_to_file(snakemake.log[0])
write_text(snakemake.output[0], yaml.safe_dump(snakemake.params.config, sort_keys=False))
