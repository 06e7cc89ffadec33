"""Write the results bundle of the run with its manifest."""

import logging
import os

from safety_landscape.bundle import build_bundle
from safety_landscape.io import log_to_file

log_to_file(snakemake.log[0])
p = snakemake.params
manifest = build_bundle(p.files, os.path.dirname(snakemake.output[0]), p.config, p.run, p.workflow_dir)
logging.getLogger("bundle").info("%d files, %.1f MB", len(manifest["files"]), manifest["total_bytes"] / 1e6)
