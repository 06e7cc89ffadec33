"""Run the main workflow on one run of a study, then copy the run's tables and figure into the study folder."""

from safety_landscape.io import log_to_file
from safety_landscape.study import copy_atomically, run_main_workflow

log_to_file(snakemake.log[0])
p = snakemake.params
run_main_workflow(p.command, snakemake.log[0], snakemake.wildcards.run)
for name, source in p.sources.items():
    copy_atomically(source, snakemake.output[name])
