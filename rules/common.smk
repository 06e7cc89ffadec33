# Config validation (schema + semantic checks, one place) and the paths every rule shares.
import re
import sys

from snakemake.utils import validate

from safety_landscape.config import (
    ConfigError,
    axes,
    check_config,
    generation_jobs,
    grid_coordinates,
    is_2d,
    landscapes,
    model_specs,
)
from safety_landscape.points import point_name

validate(config, schema="../config/schema.yaml")
try:
    check_config(config)
except ConfigError as err:
    sys.exit(f"Invalid configuration: {err}")

RUN = f"results/{config['run']}"
CACHE = "results/cache"
# The safety-finetuned model is shared by every run of the same base model.
ALIGNED = f"results/models/{config['model']['name']}-aligned"
MODELS = model_specs(config)
AXES = {axis.name: axis for axis in axes(config)}
LANDSCAPES = {ls.name: ls for ls in landscapes(config)}
COORDS = grid_coordinates(config)
POINTS = [point_name(c) for c in COORDS]
JUDGES = {spec["id"]: spec for spec in config["judges"]}
PROJECTED = [entry["name"] for entry in config["landscape"]["project"]]


wildcard_constraints:
    model="|".join(re.escape(name) for name in MODELS),
    axis="[di][0-9]+",
    landscape="[di][0-9]+(-[di][0-9]+)?",
    point="a[+-][0-9]+\\.[0-9]+(_b[+-][0-9]+\\.[0-9]+)?",
    judge="|".join(re.escape(j) for j in JUDGES),


def manifest(model):
    return f"results/models/{model}/manifest.json"


def subject_manifest():
    """Manifest of the model whose landscape is measured: the aligned model when align is on."""
    return f"{ALIGNED}/manifest.json" if config["align"]["enabled"] else manifest(config["model"]["name"])


def axis_dirs(landscape):
    return [f"{RUN}/directions/{axis}" for axis in LANDSCAPES[landscape].axes]


def figure_targets():
    if is_2d(config):
        return [f"{RUN}/figures/landscape_2d_{kind}.{ext}" for kind in ("contour", "surface") for ext in ("png", "pdf")]
    return [f"{RUN}/figures/landscape_1d.{ext}" for ext in ("png", "pdf")]


def all_targets():
    targets = [f"{RUN}/tables/{table}.{ext}" for table in ("asr", "visage", "agreement") for ext in ("csv", "parquet")]
    targets += [f"{RUN}/summary.json", *figure_targets()]
    targets += [f"{RUN}/projections/{name}.json" for name in PROJECTED]
    if config["align"]["enabled"]:
        targets.append(f"{ALIGNED}/eval.json")
    return targets
