"""Plan one round of an adaptive grid: the first round's coarse points, or, from the ASR of every point
sampled so far, the next round's points (none once the VISAGE estimate has converged)."""

import logging

from safety_landscape.adaptive import AdaptiveGrid, first_plan, next_plan, point_asr
from safety_landscape.io import log_to_file, read_json, read_jsonl, write_json

log_to_file(snakemake.log[0])
p = snakemake.params
grid = AdaptiveGrid.from_settings(p.settings)
if p.round == 0:
    plan = first_plan(grid)
else:
    records = [r for path in snakemake.input.judgments for r in read_jsonl(path) if r["landscape"] == p.landscape]
    plan = next_plan(grid, read_json(snakemake.input.previous[0]), point_asr(records), p.settings["tolerance"])
logging.getLogger("adaptive").info(
    "%s round %d: %d new points, %d sampled of %d; estimates %s; converged %s (%s)",
    p.landscape,
    plan["round"],
    len(plan["new"]),
    len(plan["sampled"]),
    len(grid.indices()),
    [round(e, 3) for e in plan["estimates"]],
    plan["converged"],
    plan["stopped_by"],
)
write_json(snakemake.output[0], plan | {"landscape": p.landscape, "grid_points": len(grid.indices())})
