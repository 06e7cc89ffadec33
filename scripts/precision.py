"""Decide whether the landscapes judged so far measure mean VISAGE precisely enough, or one more is needed."""

import logging

from safety_landscape.io import log_to_file, write_json
from safety_landscape.precision import direction_decision
from safety_landscape.tables import load_judgments

log_to_file(snakemake.log[0])
p = snakemake.params
decision = direction_decision(load_judgments(snakemake.input), p.precision, p.visage)
logging.getLogger("precision").info(
    "%d landscapes (%s): VISAGE %.2f, interval [%.2f, %.2f], half-width %.2f (target %g): %s",
    decision["landscapes"],
    ", ".join(p.landscapes),
    decision["visage"],
    *decision["visage_ci_hierarchical"],
    decision["half_width"],
    decision["target_half_width"],
    "one more" if decision["more"] else "done" if decision["reached"] else "done, max_directions reached",
)
write_json(snakemake.output[0], decision)
