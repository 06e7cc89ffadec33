# Config validation (schema + semantic checks, one place) and the paths every rule shares.
import sys

from snakemake.utils import validate

from safety_landscape.config import (
    ConfigError,
    check_config,
    direction_names,
    generation_jobs,
    grid_values,
)
from safety_landscape.points import point_name

validate(config, schema="../config/schema.yaml")
try:
    check_config(config)
except ConfigError as err:
    sys.exit(f"Invalid configuration: {err}")

RUN = f"results/{config['run']}"
MODEL = f"results/models/{config['model']['name']}"
CACHE = "results/cache"
DIRECTIONS = direction_names(config)
POINTS = [point_name(a) for a in grid_values(config["landscape"]["grid"])]
JUDGE = config["judge"]["name"]


wildcard_constraints:
    direction="d[0-9]+",
    point="a[+-][0-9]+\\.[0-9]+",


def subject_manifest():
    """Manifest of the model whose landscape is measured: the aligned model when align is on."""
    return f"{RUN}/align/manifest.json" if config["align"]["enabled"] else f"{MODEL}/manifest.json"


def point_coefficient(point):
    return float(point[1:])


def all_targets():
    targets = [
        f"{RUN}/tables/asr.csv",
        f"{RUN}/tables/visage.csv",
        f"{RUN}/summary.json",
        f"{RUN}/figures/landscape_1d.png",
        f"{RUN}/figures/landscape_1d.pdf",
    ]
    if config["align"]["enabled"]:
        targets.append(f"{RUN}/align/eval.json")
    return targets
