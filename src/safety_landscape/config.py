"""Config checks beyond the JSON schema, and the landscape plan (directions, grid points, jobs).

Everything here runs when the workflow is parsed, so bad input fails before any expensive work.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

from .modeling import resolve_source
from .points import point_name
from .prompts import load_prompt_table


class ConfigError(ValueError):
    """An invalid setting; the message names the key and how to fix it."""


def grid_values(grid: dict, key: str = "landscape.grid") -> list[float]:
    """Grid coordinates from {min, max, step}, rounded to 1e-9 so that 0 is exactly 0."""
    lo, hi, step = grid["min"], grid["max"], grid["step"]
    if step <= 0 or hi <= lo:
        raise ConfigError(f"{key}: need min < max and step > 0, got {grid}")
    count = (hi - lo) / step
    if abs(count - round(count)) > 1e-6:
        raise ConfigError(f"{key}: (max - min) / step = {count:g} is not a whole number; adjust step")
    values = [round(lo + i * step, 9) + 0.0 for i in range(round(count) + 1)]
    if 0.0 not in values:
        raise ConfigError(
            f"{key}: the points {values[:3]}...{values[-3:]} miss a = 0 (the unperturbed model), "
            "which every landscape needs; choose min and step so that 0 is a grid point"
        )
    return values


@dataclass(frozen=True)
class Axis:
    """One direction of the landscape."""

    name: str  # d1, d2, ... (random) or i1, i2 (interpolation)
    kind: str  # "random" or "interpolation"
    seed: int | None = None
    endpoint: str | None = None  # model name of theta' for interpolation axes
    partner: str | None = None  # first axis of the plane: the cosine with it is recorded
    orthogonalize: bool = False  # Gram-Schmidt against the partner


@dataclass(frozen=True)
class Landscape:
    name: str  # "d1" (1D) or "d1-d2" (2D)
    axes: tuple[str, ...]


@dataclass(frozen=True)
class GridPoint:
    landscape: str
    coords: tuple[float, ...]

    @property
    def name(self) -> str:
        return point_name(self.coords)

    @property
    def id(self) -> str:
        return f"{self.landscape}/{self.name}"


@dataclass(frozen=True)
class GenerationJob:
    name: str
    points: tuple[GridPoint, ...]


def is_2d(config: dict) -> bool:
    return config["landscape"]["kind"].startswith("2d") or config["landscape"]["kind"] == "interpolation-random"


def endpoint_names(config: dict) -> list[str]:
    return [e["name"] for e in config["landscape"]["endpoints"]]


def axes(config: dict) -> list[Axis]:
    """The directions a landscape kind needs, in generation order."""
    ls = config["landscape"]
    kind, seed, ends = ls["kind"], ls["seed"], endpoint_names(config)
    orthogonalize = ls["orthogonalize"] if ls["orthogonalize"] is not None else kind == "2d-interpolation"
    if kind == "1d-random":
        return [Axis(f"d{k + 1}", "random", seed + k) for k in range(ls["directions"])]
    if kind == "2d-random":
        return [Axis("d1", "random", seed), Axis("d2", "random", seed + 1, partner="d1", orthogonalize=orthogonalize)]
    if kind == "1d-interpolation":
        return [Axis("i1", "interpolation", endpoint=ends[0])]
    if kind == "2d-interpolation":
        return [Axis("i1", "interpolation", endpoint=ends[0]),
                Axis("i2", "interpolation", endpoint=ends[1], partner="i1", orthogonalize=orthogonalize)]
    return [Axis("i1", "interpolation", endpoint=ends[0]), Axis("d1", "random", seed, partner="i1", orthogonalize=orthogonalize)]


def landscapes(config: dict) -> list[Landscape]:
    names = [a.name for a in axes(config)]
    if is_2d(config):
        return [Landscape("-".join(names), tuple(names))]
    return [Landscape(n, (n,)) for n in names]


def grid_coordinates(config: dict) -> list[tuple[float, ...]]:
    """Coordinates of every point of one landscape: a-values (1D) or the (a, b) product grid (2D)."""
    a = grid_values(config["landscape"]["grid"])
    if not is_2d(config):
        return [(x,) for x in a]
    b = grid_values(config["landscape"]["grid_b"] or config["landscape"]["grid"], "landscape.grid_b")
    return list(itertools.product(a, b))


def grid_points(config: dict) -> list[GridPoint]:
    return [GridPoint(ls.name, c) for ls in landscapes(config) for c in grid_coordinates(config)]


def generation_jobs(config: dict) -> list[GenerationJob]:
    """Points of each landscape dealt round-robin into jobs of at most points_per_job points,
    so that every job mixes cheap points near the centre with expensive ones at the edges."""
    per_job = config["generation"]["points_per_job"]
    coords = grid_coordinates(config)
    jobs = []
    for ls in landscapes(config):
        n_jobs = math.ceil(len(coords) / per_job)
        for j in range(n_jobs):
            jobs.append(GenerationJob(f"{ls.name.replace('-', '_')}_job{j + 1}", tuple(GridPoint(ls.name, c) for c in coords[j::n_jobs])))
    return jobs


def model_specs(config: dict) -> dict[str, dict]:
    """Every model the run reads, by name: the model itself, interpolation endpoints, projected checkpoints."""
    specs = {config["model"]["name"]: config["model"]}
    for entry in config["landscape"]["endpoints"] + config["landscape"]["project"]:
        if entry["name"] in specs and specs[entry["name"]]["source"] != entry["source"]:
            raise ConfigError(f"landscape: the name {entry['name']!r} is used for two different sources; give each model its own name")
        specs[entry["name"]] = {"gguf_file": None, "trust_remote_code": config["model"]["trust_remote_code"]} | entry
    return specs


KEYWORD_JUDGES = ("keyword", "keyword-robust")


def resolve_judges(config: dict) -> None:
    """Give every judge its id (default: its name), check ids and required settings, and resolve
    `generation.stop_on_refusal: null` (early stop only when every judge is a keyword judge, which
    early stop cannot fool)."""
    ids = []
    for i, spec in enumerate(config["judges"]):
        spec.setdefault("id", spec["name"])
        ids.append(spec["id"])
        needed = {"guard": ("model",), "harmbench-cls": ("model",), "endpoint": ("url", "model")}.get(spec["name"], ())
        missing = [key for key in needed if not spec.get(key)]
        if missing:
            raise ConfigError(f"judges[{i}] ({spec['name']}): set {', '.join(missing)}")
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ConfigError(f"judges: ids {duplicates} are used twice; give each judge its own id")
    generation = config["generation"]
    only_keywords = all(spec["name"] in KEYWORD_JUDGES for spec in config["judges"])
    if generation["stop_on_refusal"] is None:
        generation["stop_on_refusal"] = only_keywords
    elif generation["stop_on_refusal"] and not only_keywords:
        raise ConfigError(
            "generation.stop_on_refusal: early stop truncates responses, which can change the verdict of "
            "model and endpoint judges; set it to false (or null) when such a judge is configured"
        )


def check_config(config: dict, workdir: str | Path = ".") -> None:
    """Semantic checks the schema cannot express; raises ConfigError naming the key and the fix."""
    workdir = Path(workdir)
    resolve_judges(config)
    _check_landscape(config)
    sources = [("model.source", config["model"])]
    for group in ("endpoints", "project"):
        sources += [(f"landscape.{group}[{i}].source", entry) for i, entry in enumerate(config["landscape"][group])]
    for key, spec in sources:
        try:
            resolve_source(spec["source"], spec.get("gguf_file"), key)
        except ValueError as err:
            raise ConfigError(str(err)) from None
    model_specs(config)
    prompts = config["prompts"]
    try:
        table = load_prompt_table(workdir / prompts["file"], prompts["column"])
    except ValueError as err:
        raise ConfigError(str(err)) from None
    count = prompts["count"] if prompts["count"] is not None else len(table) - prompts["start"]
    if prompts["start"] + count > len(table):
        raise ConfigError(f"prompts.count: rows {prompts['start']}..{prompts['start'] + count - 1} asked for, {prompts['file']} has {len(table)}")
    align = config["align"]
    if align["enabled"]:
        _check_align(align, prompts, count, workdir)


def _check_landscape(config: dict) -> None:
    ls = config["landscape"]
    needed = {"1d-interpolation": 1, "2d-interpolation": 2, "interpolation-random": 1}.get(ls["kind"], 0)
    if len(ls["endpoints"]) != needed:
        raise ConfigError(
            f"landscape.endpoints: kind {ls['kind']!r} needs {needed} endpoint model(s) ({{name, source}}), "
            f"{len(ls['endpoints'])} given"
        )
    grid_coordinates(config)
    if ls["project"] and not is_2d(config) and len(landscapes(config)) > 1:
        raise ConfigError("landscape.project: projections go on one line or plane; use a 2D kind or an interpolation kind")


def _check_align(align: dict, prompts: dict, count: int, workdir: Path) -> None:
    for key in ("refusals", "benign_prompts", "benign_eval_prompts", "harmful_file"):
        if not (workdir / align[key]).is_file():
            raise ConfigError(f"align.{key}: {align[key]} does not exist; fix the path or set align.enabled: false")
    lo, hi = align["harmful_rows"]
    if hi <= lo:
        raise ConfigError(f"align.harmful_rows: [{lo}, {hi}] is empty; give [first, end) with first < end")
    same_file = Path(align["harmful_file"]).resolve() == Path(prompts["file"]).resolve()
    eval_lo, eval_hi = prompts["start"], prompts["start"] + count
    if same_file and lo < eval_hi and eval_lo < hi:
        raise ConfigError(
            f"align.harmful_rows: [{lo}, {hi}) overlaps the evaluation prompts [{eval_lo}, {eval_hi}); "
            "training on evaluation prompts would inflate the measured safety. Use rows outside that range"
        )
