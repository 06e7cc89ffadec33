"""The plan of a run, derived from its (validated) config without changing it: the landscape kinds,
directions, landscapes and their grid points, generation jobs, points that share weights, models,
finetuning checkpoints, system prompts and judges.

Everything here runs when the workflow is parsed; it imports no torch.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .prompts import mmlu_subjects, prompt_source

AXIS_LETTERS = "ab"


class ConfigError(ValueError):
    """An invalid setting; the message names the key and how to fix it."""


@dataclass(frozen=True)
class LandscapeKind:
    """What a `landscape.kind` is made of: the kind of each axis (1d-random repeats its one random
    axis `landscape.directions` times) and whether the axes span one plane or are separate lines."""

    axes: tuple[str, ...]  # "random" or "interpolation" per axis
    plane: bool  # a 2D landscape over the axes, or one 1D landscape per axis
    orthogonalize: bool  # the paper's default: Gram-Schmidt the second axis against the first
    summary: str  # what it spans, for report captions ({directions}, {endpoints} filled in)

    @property
    def endpoints(self) -> int:
        """Interpolation endpoints the kind needs (landscape.endpoints)."""
        return self.axes.count("interpolation")


LANDSCAPE_KINDS = {
    "1d-random": LandscapeKind(("random",), False, False, "1D landscapes along {directions} random directions"),
    "2d-random": LandscapeKind(("random", "random"), True, False, "the plane of two random directions"),
    "1d-interpolation": LandscapeKind(("interpolation",), False, False, "the line towards {endpoints}"),
    "2d-interpolation": LandscapeKind(("interpolation", "interpolation"), True, True, "the plane through {endpoints}"),
    "interpolation-random": LandscapeKind(
        ("interpolation", "random"), True, False, "the plane of the line towards {endpoints} and a random direction"
    ),
}


def landscape_kind(config: dict) -> LandscapeKind:
    return LANDSCAPE_KINDS[config["landscape"]["kind"]]


def point_name(coords: float | Sequence[float]) -> str:
    """File stem of a grid point, e.g. a+0.0500 (1D) or a+0.0500_b-0.1000 (2D)."""
    coords = [coords] if isinstance(coords, (int, float)) else list(coords)
    return "_".join(f"{AXIS_LETTERS[i]}{c:+.4f}" for i, c in enumerate(coords))


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
    name: str  # "d1" (1D), "d1-d2" (2D), "d1@aoa" (d1 under the system prompt "aoa"), "d1@over-refusal" (safe prompts)
    axes: tuple[str, ...]
    coords: tuple[tuple[float, ...], ...]
    # "main" (VISAGE), "sequential" (VISAGE when the precision decisions ask for it), "system-prompt",
    # "over-refusal", "finetune" (aligned -> finetuned lines), "finetune-plane"
    group: str = "main"
    variant: str | None = None  # system prompt variant; None = generation.system_prompt
    points_from: str | None = None  # landscape whose point artifacts this one answers at (None = its own)
    prompt_set: str = "prompts"  # the config section of the prompts it answers: "prompts" or "over_refusal" (safe prompts)

    @property
    def point_landscape(self) -> str:
        return self.points_from or self.name

    @property
    def points(self) -> list["GridPoint"]:
        return [GridPoint(self.name, c) for c in self.coords]


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
    """Points of one landscape generated by one job (the model loads once per job)."""

    landscape: Landscape
    number: int  # 1, 2, ... within the landscape
    points: tuple[GridPoint, ...]


def is_2d(config: dict) -> bool:
    return landscape_kind(config).plane


def endpoint_names(config: dict) -> list[str]:
    return [e["name"] for e in config["landscape"]["endpoints"]]


def axes(config: dict) -> list[Axis]:
    """Every direction of the run: those of the landscape kind, then one interpolation direction
    aligned -> finetuned (final epoch) per finetuning dataset."""
    return _landscape_axes(config) + [
        Axis(f"f{k + 1}", "interpolation", endpoint=checkpoint_name(ds["name"], config["finetune"]["epochs"]))
        for k, ds in enumerate(finetune_datasets(config))
    ]


def precision_settings(config: dict) -> dict | None:
    """landscape.precision (sequential directions), None when off."""
    return config["landscape"].get("precision")


def landscape_count(config: dict) -> int:
    """Main landscapes in the plan: 1d-random's `directions` lines, one for any other kind; with
    landscape.precision, max_directions lines or planes (those past min_directions are measured only
    when the sequential decisions ask for them)."""
    precision = precision_settings(config)
    if precision:
        return precision["max_directions"]
    return config["landscape"]["directions"] if landscape_kind(config).axes == ("random",) else 1


def _landscape_axes(config: dict) -> list[Axis]:
    """The axes of the landscape kind: random ones d1, d2, ... (seeds seed, seed + 1, ...) and
    interpolation ones i1, i2 towards the endpoints; the second axis of a plane records its cosine
    with the first and is orthogonalized against it when asked."""
    ls, kind = config["landscape"], landscape_kind(config)
    kinds = kind.axes * landscape_count(config)
    orthogonalize = ls["orthogonalize"] if ls["orthogonalize"] is not None else kind.orthogonalize
    result, counts = [], {"random": 0, "interpolation": 0}
    for position, axis_kind in enumerate(kinds):
        k = counts[axis_kind]
        counts[axis_kind] += 1
        pair = {"partner": result[position - 1].name, "orthogonalize": orthogonalize} if kind.plane and position % 2 else {}
        if axis_kind == "random":
            result.append(Axis(f"d{k + 1}", "random", seed=ls["seed"] + k, **pair))
        else:
            result.append(Axis(f"i{k + 1}", "interpolation", endpoint=endpoint_names(config)[k], **pair))
    return result


def landscapes(config: dict) -> list[Landscape]:
    """The main landscape(s) (with landscape.precision, those past min_directions in the group
    "sequential"), their system prompt variants and their over-refusal twins (the safe prompts at the
    same points), then per finetuning dataset the line aligned -> finetuned, then the plane spanned by
    two of those lines (the finetuned models sit at (1, 0) and (0, 1))."""
    names = [a.name for a in _landscape_axes(config)]
    coords = tuple(grid_coordinates(config))
    width = len(landscape_kind(config).axes) if is_2d(config) else 1
    precision = precision_settings(config)
    result = [
        Landscape(
            "-".join(names[i : i + width]),
            tuple(names[i : i + width]),
            coords,
            "sequential" if precision and i // width >= precision["min_directions"] else "main",
        )
        for i in range(0, len(names), width)
    ]
    result += [
        Landscape(f"{main.name}@{variant['name']}", main.axes, coords, "system-prompt", variant["name"], main.name)
        for variant in config["system_prompts"]
        for main in list(result)
    ]
    if config["over_refusal"]["enabled"]:
        mains = [ls for ls in result if ls.group == "main"]
        result += [
            Landscape(f"{main.name}{OVER_REFUSAL}", main.axes, coords, "over-refusal", None, main.name, "over_refusal")
            for main in mains
        ]
    ft = config["finetune"]
    if not ft["enabled"]:
        return result
    line = tuple((a,) for a in grid_values(ft["interpolation"]["grid"], "finetune.interpolation.grid"))
    axis_of = {ds["name"]: f"f{k + 1}" for k, ds in enumerate(finetune_datasets(config))}
    result += [Landscape(axis, (axis,), line, "finetune") for axis in axis_of.values()]
    plane = ft["plane"]
    if plane["datasets"]:
        a = grid_values(plane["grid"], "finetune.plane.grid")
        b = grid_values(plane["grid_b"] or plane["grid"], "finetune.plane.grid_b")
        first, second = (axis_of[name] for name in plane["datasets"])
        result.append(Landscape(f"{first}-{second}", (first, second), tuple(itertools.product(a, b)), "finetune-plane"))
    return result


OVER_REFUSAL = "@over-refusal"  # suffix of the landscapes that answer the safe prompts of over_refusal


def landscape_prompts(config: dict, landscape: Landscape) -> dict:
    """The prompts a landscape answers, resolved (prompts.prompt_source): the harmful prompts, or the
    safe prompts of `over_refusal` (XSTest's safe prompts unless set otherwise)."""
    if landscape.prompt_set == "over_refusal":
        return prompt_source(config["over_refusal"], "over_refusal", default="xstest-safe")
    return prompt_source(config["prompts"])


def refusal_judge(config: dict) -> str:
    """Id of the judge whose "not jailbroken" verdict counts as a refusal of a safe prompt:
    over_refusal.judge, or the first keyword judge."""
    chosen = config["over_refusal"]["judge"]
    keyword = [judge for judge, spec in judge_specs(config).items() if spec["name"] in KEYWORD_JUDGES]
    if chosen is None and not keyword:
        raise ConfigError(
            "over_refusal.judge: no keyword judge in judges to count refusals; add {name: keyword} to judges "
            "or name a judge id in over_refusal.judge"
        )
    return chosen if chosen is not None else keyword[0]


def grid_coordinates(config: dict) -> list[tuple[float, ...]]:
    """Coordinates of every point of the main landscape: a-values (1D) or the (a, b) product grid (2D)."""
    a = grid_values(config["landscape"]["grid"])
    if not is_2d(config):
        return [(x,) for x in a]
    b = grid_values(config["landscape"]["grid_b"] or config["landscape"]["grid"], "landscape.grid_b")
    return list(itertools.product(a, b))


def generation_jobs(config: dict) -> list[GenerationJob]:
    """Points of each landscape dealt round-robin into jobs of at most points_per_job points,
    so that every job mixes cheap points near the centre with expensive ones at the edges."""
    per_job = config["generation"]["points_per_job"]
    jobs = []
    for ls in landscapes(config):
        points = ls.points
        n_jobs = math.ceil(len(points) / per_job)
        jobs += [GenerationJob(ls, j + 1, tuple(points[j::n_jobs])) for j in range(n_jobs)]
    return jobs


def generation_dtype(config: dict, landscape: Landscape) -> str:
    """Generation dtype of a landscape: finetune.interpolation.dtype for the finetune lines and plane
    when set, else generation.dtype."""
    line_dtype = config["finetune"]["interpolation"]["dtype"]
    return line_dtype if landscape.group in ("finetune", "finetune-plane") and line_dtype else config["generation"]["dtype"]


def reused_points(config: dict) -> dict[str, str]:
    """Grid points whose weights, system prompt, prompts and generation dtype equal those of a point of an
    earlier landscape (same directions with the same nonzero coefficients, e.g. every a = 0, or a
    finetune line inside the plane of finetunes), mapped to that earlier point's id: generation then
    takes their responses from the cache."""
    first, reused = {}, {}
    for ls in landscapes(config):
        for point in ls.points:
            identity = (
                ls.variant,
                ls.prompt_set,
                generation_dtype(config, ls),
                frozenset((axis, c) for axis, c in zip(ls.axes, point.coords) if c != 0.0),
            )
            reused[point.id] = first[identity] if identity in first else None
            first.setdefault(identity, point.id)
    return {k: v for k, v in reused.items() if v is not None}


def main_variant(config: dict) -> str:
    """Label of the main landscape's system prompt in the system-prompt tables: "default" when it is
    the model's default (generation.system_prompt null)."""
    return "default" if config["generation"]["system_prompt"] is None else "configured"


def system_prompt_text(spec: str | dict | None, workdir: str | Path = ".") -> str | None:
    """A system prompt setting as text: a string as it is, {file: path} as the file's stripped
    contents, None (the chat template's behaviour without a system message) as None."""
    if isinstance(spec, dict):
        return (Path(workdir) / spec["file"]).read_text(encoding="utf-8").strip()
    return spec


def main_system_prompt(config: dict, workdir: str | Path = ".") -> str | None:
    """System prompt of the main landscape (and of finetuning data): generation.system_prompt, or
    the model's default (model.system_prompt) when that is null."""
    spec = config["generation"]["system_prompt"]
    return system_prompt_text(config["model"]["system_prompt"] if spec is None else spec, workdir)


def system_prompt_texts(config: dict, workdir: str | Path = ".") -> dict[str, str | None]:
    """System prompt of every variant, by name: the main landscape's first, then each of
    `system_prompts` (text, file contents, or None = the model's default)."""
    texts = {main_variant(config): main_system_prompt(config, workdir)}
    for variant in config["system_prompts"]:
        spec = {"file": variant["file"]} if "file" in variant else variant.get("text", config["model"]["system_prompt"])
        texts[variant["name"]] = system_prompt_text(spec, workdir)
    return texts


def finetune_datasets(config: dict) -> list[dict]:
    """The finetuning datasets (none when finetuning is off)."""
    return config["finetune"]["datasets"] if config["finetune"]["enabled"] else []


def checkpoint_name(dataset: str, epoch: int) -> str:
    """Name of the checkpoint saved after `epoch` (1-based) of finetuning on `dataset`."""
    return f"{dataset}-epoch{epoch}"


def finetune_evaluations(config: dict) -> list[tuple[str, str, int, str]]:
    """(checkpoint, dataset, epoch, evaluation set) of every checkpoint evaluation: the model before
    finetuning ("aligned", epoch 0) and each epoch (or only the last, per set) of every dataset."""
    ft = config["finetune"]
    result = []
    for spec in ft["evaluation"]["sets"] if ft["enabled"] else []:
        epochs = range(1, ft["epochs"] + 1) if spec["epochs"] == "all" else [ft["epochs"]]
        result.append(("aligned", "aligned", 0, spec["name"]))
        result += [(checkpoint_name(ds["name"], e), ds["name"], e, spec["name"]) for ds in ft["datasets"] for e in epochs]
    return result


def model_specs(config: dict) -> dict[str, dict]:
    """Every model the run reads, by name: the model itself, interpolation endpoints, projected checkpoints,
    and judge models given by hub id."""
    specs = {config["model"]["name"]: config["model"]}
    for entry in config["landscape"]["endpoints"] + config["landscape"]["project"] + list(judge_models(config).values()):
        if entry["name"] in specs and specs[entry["name"]]["source"] != entry["source"]:
            raise ConfigError(
                f"landscape: the name {entry['name']!r} is used for two different sources; give each model its own name"
            )
        specs[entry["name"]] = {"gguf_file": None, "trust_remote_code": config["model"]["trust_remote_code"]} | entry
    return specs


def capability_files(capability: dict) -> list[str]:
    """The files the capability jobs read: references, zero-shot questions and MMLU CSVs (those configured)."""
    files = [capability["references"]] + ([capability["questions"]] if capability["questions"] else [])
    mmlu = capability["mmlu"]
    if mmlu["folder"]:
        splits = ("dev", "test") if mmlu["shots"] else ("test",)
        files += [
            f"{mmlu['folder']}/{split}/{s}_{split}.csv"
            for split in splits
            for s in mmlu_subjects(mmlu["folder"], mmlu["subjects"])
        ]
    return files


KEYWORD_JUDGES = ("keyword",)
MODEL_JUDGES = ("harmbench", "harmbench-cls", "llama-guard-2", "llama-guard-3", "guard", "strongreject", "wildguard")


def judge_specs(config: dict) -> dict[str, dict]:
    """Every judge by its id (default: its name), each spec with its id filled in."""
    return {spec.get("id", spec["name"]): spec | {"id": spec.get("id", spec["name"])} for spec in config["judges"]}


GUARD_FORMATS = ("llama-guard-2", "llama-guard-3", "guard")


def guard_judges(config: dict) -> dict[str, str]:
    """The judges that answer in Llama Guard's format (with category codes), by id: their format
    (llama-guard-2, llama-guard-3 or guard; an endpoint judge's `format`)."""
    specs = judge_specs(config)
    kinds = {judge_id: spec.get("format") if spec["name"] == "endpoint" else spec["name"] for judge_id, spec in specs.items()}
    return {judge_id: kind for judge_id, kind in kinds.items() if kind in GUARD_FORMATS}


def judge_models(config: dict, workdir: str | Path = ".") -> dict[str, dict]:
    """The model judges whose `model` is a hub id rather than a local folder, by judge id: the spec the model
    rule downloads it with, named after the id and revision (meta-llama/Llama-Guard-3-8B at main:
    meta-llama--Llama-Guard-3-8B, at a revision: ...--<revision>)."""
    result = {}
    for i, (judge_id, spec) in enumerate(judge_specs(config).items()):
        if spec["name"] not in MODEL_JUDGES or (Path(workdir) / spec["model"]).is_dir():
            continue
        revision = spec.get("revision")
        name = spec["model"].replace("/", "--") + (f"--{re.sub(r'[^A-Za-z0-9_.-]', '_', revision)}" if revision else "")
        result[judge_id] = {
            "name": name,
            "source": spec["model"],
            "revision": revision,
            "gguf_file": None,
            "trust_remote_code": spec.get("trust_remote_code", False),
            "key": f"judges[{i}].model",
        }
    return result


def stop_on_refusal(config: dict) -> bool:
    """generation.stop_on_refusal, where null means: on when every judge is a keyword judge (which
    early stop cannot fool)."""
    setting = config["generation"]["stop_on_refusal"]
    return all(spec["name"] in KEYWORD_JUDGES for spec in config["judges"]) if setting is None else setting


def generation_settings(config: dict, workdir: str | Path = ".") -> dict:
    """generation settings of the main landscape with null settings resolved: its system prompt's
    text and whether to stop on refusal."""
    return config["generation"] | {
        "system_prompt": main_system_prompt(config, workdir),
        "stop_on_refusal": stop_on_refusal(config),
    }


def landscape_setup(config: dict) -> str:
    """The run's landscape setup in a few lines of reStructuredText, for report captions."""
    ls, kind = config["landscape"], landscape_kind(config)
    grid = lambda g, axis: f"{axis} = {g['min']:g} to {g['max']:g} in steps of {g['step']:g}"  # noqa: E731
    grids = grid(ls["grid"], "a") + (f" and {grid(ls['grid_b'] or ls['grid'], 'b')}" if kind.plane else "")
    precision = precision_settings(config)
    directions = f"{precision['min_directions']} to {precision['max_directions']}" if precision else ls["directions"]
    what = kind.summary.format(directions=directions, endpoints=" and ".join(e["name"] for e in ls["endpoints"]))
    if precision:
        planes = f", {directions} such planes" if kind.plane else ""
        what += f"{planes}, added until the hierarchical VISAGE interval's half-width is at most {precision['half_width']:g}"
    prompts, aligned = prompt_source(config["prompts"]), ", safety-finetuned first" if config["align"]["enabled"] else ""
    source = f"set ``{prompts['set']}``" if prompts["set"] else f"``{prompts['file']}``"
    count = prompts["count"] if prompts["count"] is not None else "all"
    return (
        f"**{config['model']['name']}** (run ``{config['run']}``{aligned}): "
        f"a ``{ls['kind']}`` landscape, {what} (seed {ls['seed']}, {ls['normalization']} normalization), grid {grids}; "
        f"{count} prompts of {source} from row {prompts['start']}, greedy answers of up to "
        f"{config['generation']['max_new_tokens']} tokens; judges {', '.join(judge_specs(config))} (the first headlines)."
    )
