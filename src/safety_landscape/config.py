"""Config checks beyond the JSON schema, and the landscape plan (directions, grid points, jobs).

Everything here runs when the workflow is parsed, so bad input fails before any expensive work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .modeling import resolve_source
from .points import point_name
from .prompts import load_prompt_table


class ConfigError(ValueError):
    """An invalid setting; the message names the key and how to fix it."""


def grid_values(grid: dict) -> list[float]:
    """Grid coordinates from {min, max, step}, rounded to 1e-9 so that 0 is exactly 0."""
    lo, hi, step = grid["min"], grid["max"], grid["step"]
    if step <= 0 or hi <= lo:
        raise ConfigError(f"landscape.grid: need min < max and step > 0, got {grid}")
    count = (hi - lo) / step
    if abs(count - round(count)) > 1e-6:
        raise ConfigError(f"landscape.grid: (max - min) / step = {count:g} is not a whole number; adjust step")
    values = [round(lo + i * step, 9) + 0.0 for i in range(round(count) + 1)]
    if 0.0 not in values:
        raise ConfigError(
            f"landscape.grid: the points {values[:3]}...{values[-3:]} miss a = 0 (the unperturbed model), "
            "which every landscape needs; choose min and step so that 0 is a grid point"
        )
    return values


@dataclass(frozen=True)
class GridPoint:
    direction: str
    a: float

    @property
    def name(self) -> str:
        return point_name(self.a)

    @property
    def id(self) -> str:
        return f"{self.direction}/{self.name}"


@dataclass(frozen=True)
class GenerationJob:
    name: str
    points: tuple[GridPoint, ...]


def direction_names(config: dict) -> list[str]:
    return [f"d{i + 1}" for i in range(config["landscape"]["directions"])]


def grid_points(config: dict) -> list[GridPoint]:
    values = grid_values(config["landscape"]["grid"])
    return [GridPoint(d, a) for d in direction_names(config) for a in values]


def generation_jobs(config: dict) -> list[GenerationJob]:
    """Points of each direction dealt round-robin into jobs of at most points_per_job points,
    so that every job mixes cheap points near the centre with expensive ones at the edges."""
    per_job = config["generation"]["points_per_job"]
    values = grid_values(config["landscape"]["grid"])
    jobs = []
    for d in direction_names(config):
        n_jobs = math.ceil(len(values) / per_job)
        for j in range(n_jobs):
            jobs.append(GenerationJob(f"{d}_job{j + 1}", tuple(GridPoint(d, a) for a in values[j::n_jobs])))
    return jobs


def check_config(config: dict, workdir: str | Path = ".") -> None:
    """Semantic checks the schema cannot express; raises ConfigError naming the key and the fix."""
    workdir = Path(workdir)
    try:
        resolve_source(config["model"]["source"], config["model"].get("gguf_file"))
    except ValueError as err:
        raise ConfigError(str(err)) from None
    grid_values(config["landscape"]["grid"])
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
