"""Config checks beyond the JSON schema, and the landscape plan (directions, grid points, jobs).

Everything here runs when the workflow is parsed, so bad input fails before any expensive work.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .modeling import resolve_source
from .points import point_name
from .prompts import PAIR_FORMAT, load_mmlu, load_multiple_choice, load_pairs, load_prompt_table, load_references


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
    name: str  # "d1" (1D), "d1-d2" (2D), "d1@aoa" (d1 answered under the system prompt variant "aoa")
    axes: tuple[str, ...]
    coords: tuple[tuple[float, ...], ...]
    group: str = "main"  # "main" (VISAGE), "system-prompt", "finetune" (aligned -> finetuned lines), "finetune-plane"
    variant: str | None = None  # system prompt variant; None = generation.system_prompt
    points_from: str | None = None  # landscape whose point artifacts this one answers at (None = its own)

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
    name: str
    landscape: Landscape
    points: tuple[GridPoint, ...]


def rule_name(landscape: str) -> str:
    """A landscape name as part of a rule name ("d1-d2@aoa" -> "d1_d2_aoa")."""
    return re.sub(r"[^A-Za-z0-9_]", "_", landscape)


def is_2d(config: dict) -> bool:
    return config["landscape"]["kind"].startswith("2d") or config["landscape"]["kind"] == "interpolation-random"


def endpoint_names(config: dict) -> list[str]:
    return [e["name"] for e in config["landscape"]["endpoints"]]


def axes(config: dict) -> list[Axis]:
    """Every direction of the run: those of the landscape kind, then one interpolation direction
    aligned -> finetuned (final epoch) per finetuning dataset."""
    return _landscape_axes(config) + [
        Axis(f"f{k + 1}", "interpolation", endpoint=checkpoint_name(ds["name"], config["finetune"]["epochs"]))
        for k, ds in enumerate(finetune_datasets(config))
    ]


def _landscape_axes(config: dict) -> list[Axis]:
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
    """The main landscape(s), then per finetuning dataset the line aligned -> finetuned, then the
    plane spanned by two of those lines (the finetuned models sit at (1, 0) and (0, 1))."""
    names = [a.name for a in _landscape_axes(config)]
    coords = tuple(grid_coordinates(config))
    if is_2d(config):
        result = [Landscape("-".join(names), tuple(names), coords)]
    else:
        result = [Landscape(n, (n,), coords) for n in names]
    result += [
        Landscape(f"{main.name}@{variant['name']}", main.axes, coords, "system-prompt", variant["name"], main.name)
        for variant in config["system_prompts"] for main in list(result)
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
        for j in range(n_jobs):
            jobs.append(GenerationJob(f"{rule_name(ls.name)}_job{j + 1}", ls, tuple(points[j::n_jobs])))
    return jobs


def generation_dtype(config: dict, landscape: Landscape) -> str:
    """Generation dtype of a landscape: finetune.interpolation.dtype for the finetune lines and plane
    when set, else generation.dtype."""
    line_dtype = config["finetune"]["interpolation"]["dtype"]
    return line_dtype if landscape.group in ("finetune", "finetune-plane") and line_dtype else config["generation"]["dtype"]


def reused_points(config: dict) -> dict[str, str]:
    """Grid points whose weights, system prompt and generation dtype equal those of a point of an
    earlier landscape (same directions with the same nonzero coefficients, e.g. every a = 0, or a
    finetune line inside the plane of finetunes), mapped to that earlier point's id: generation then
    takes their responses from the cache."""
    first, reused = {}, {}
    for ls in landscapes(config):
        for point in ls.points:
            identity = (ls.variant, generation_dtype(config, ls), frozenset((axis, c) for axis, c in zip(ls.axes, point.coords) if c != 0.0))
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
    template = config["model"]["chat_template"]
    if template and not (workdir / template).is_file():
        raise ConfigError(f"model.chat_template: {template} does not exist; give a Jinja template file or null")
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
    if config["finetune"]["enabled"]:
        _check_finetune(config["finetune"], prompts, count, workdir)
    _check_system_prompts(config, workdir)
    if config["capability"]["enabled"]:
        _check_capability(config["capability"], workdir)


def _check_system_prompt_files(config: dict, workdir: Path) -> None:
    for key, spec in (("model.system_prompt", config["model"]["system_prompt"]), ("generation.system_prompt", config["generation"]["system_prompt"])):
        if isinstance(spec, dict) and not (workdir / spec["file"]).is_file():
            raise ConfigError(f"{key}: file {spec['file']} does not exist; fix the path (e.g. data/system_prompts/llama2.txt)")


def _check_system_prompts(config: dict, workdir: Path) -> None:
    _check_system_prompt_files(config, workdir)
    names = [main_variant(config)]
    for i, variant in enumerate(config["system_prompts"]):
        key = f"system_prompts[{i}] ({variant['name']})"
        if variant["name"] in names:
            raise ConfigError(f"{key}: the name is taken ({names}; {names[0]!r} is the main landscape's "
                              "generation.system_prompt); choose another")
        names.append(variant["name"])
        if "text" in variant and "file" in variant:
            raise ConfigError(f"{key}: give text or file, not both")
        if "file" in variant and not (workdir / variant["file"]).is_file():
            raise ConfigError(f"{key}: file {variant['file']} does not exist; fix the path")
    if config["system_prompts"] and not config["generation"]["chat_template"]:
        raise ConfigError("system_prompts: system prompts need the chat template; set generation.chat_template: true or system_prompts: []")


def _check_capability(capability: dict, workdir: Path) -> None:
    for key, load in (("references", load_references), ("questions", load_multiple_choice)):
        try:
            if capability[key] is not None:
                load(workdir / capability[key])
        except ValueError as err:
            raise ConfigError(f"capability.{key}: {err}") from None
    mmlu = capability.get("mmlu") or {}  # configs checked without the schema's defaults may lack it
    if mmlu.get("folder") is not None:
        try:
            load_mmlu(workdir / mmlu["folder"], mmlu["subjects"], mmlu["shots"])
        except ValueError as err:
            raise ConfigError(str(err)) from None


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


def _check_rows_disjoint(key: str, rows: Sequence[int], file: str, prompts: dict, count: int) -> None:
    lo, hi = rows
    if hi <= lo:
        raise ConfigError(f"{key}: [{lo}, {hi}] is empty; give [first, end) with first < end")
    eval_lo, eval_hi = prompts["start"], prompts["start"] + count
    if Path(file).resolve() == Path(prompts["file"]).resolve() and lo < eval_hi and eval_lo < hi:
        raise ConfigError(
            f"{key}: [{lo}, {hi}) overlaps the evaluation prompts [{eval_lo}, {eval_hi}); "
            "training on evaluation prompts would inflate the measured safety. Use rows outside that range"
        )


def _check_finetune(ft: dict, prompts: dict, count: int, workdir: Path) -> None:
    names = [ds["name"] for ds in ft["datasets"]]
    if not names:
        raise ConfigError("finetune.datasets: empty; list at least one dataset or set finetune.enabled: false")
    duplicates = sorted({n for n in names if names.count(n) > 1} | ({"aligned"} & set(names)))
    if duplicates:
        raise ConfigError(f"finetune.datasets: names {duplicates} are taken (used twice, or 'aligned'); rename them")
    for key in ("harmful_file", "refusals"):
        if not (workdir / ft[key]).is_file():
            raise ConfigError(f"finetune.{key}: {ft[key]} does not exist; fix the path")
    for key in ("harmful_rows", "safe_rows"):
        _check_rows_disjoint(f"finetune.{key}", ft[key], ft["harmful_file"], prompts, count)
    harmful_span, safe_span = ft["harmful_rows"][1] - ft["harmful_rows"][0], ft["safe_rows"][1] - ft["safe_rows"][0]
    for i, ds in enumerate(ft["datasets"]):
        key = f"finetune.datasets[{i}] ({ds['name']})"
        if ds["kind"] == "jsonl":
            if not ds.get("file"):
                raise ConfigError(f"{key}: kind jsonl needs file: a JSONL file with {PAIR_FORMAT}")
            if not (workdir / ds["file"]).is_file():
                raise ConfigError(
                    f"{key}: the training file {ds['file']} does not exist. It must hold {PAIR_FORMAT}. The paper's "
                    "datasets (Qi et al. 2023: pure_bad 10/50/100-shot and bad_100_safe_100) are access-controlled: request "
                    "them from their authors and put them there (see data/pure_bad/README.md), or use kind: harmful "
                    "(AdvBench (goal, target) pairs) as a stand-in"
                )
            try:
                load_pairs(workdir / ds["file"])
            except ValueError as err:
                raise ConfigError(f"{key}: {err}") from None
            continue
        shots = ds.get("shots")
        if not shots:
            raise ConfigError(f"{key}: kind {ds['kind']} needs shots: the number of harmful pairs")
        if shots > harmful_span:
            raise ConfigError(f"{key}: shots {shots} > the {harmful_span} rows of finetune.harmful_rows; widen the rows or lower shots")
        if ds["kind"] == "mix" and shots > safe_span:
            raise ConfigError(f"{key}: shots {shots} > the {safe_span} rows of finetune.safe_rows; widen the rows or lower shots")
    plane = ft["plane"]["datasets"]
    if plane and (len(plane) != 2 or plane[0] == plane[1] or not set(plane) <= set(names)):
        raise ConfigError(f"finetune.plane.datasets: {plane} must name two different datasets of finetune.datasets {names} (or be [])")
    for i, spec in enumerate(ft["evaluation"]["sets"]):
        try:
            table = load_prompt_table(workdir / spec["file"], spec["column"])
        except ValueError as err:
            raise ConfigError(f"finetune.evaluation.sets[{i}]: {err}") from None
        if spec["start"] + spec["count"] > len(table):
            raise ConfigError(f"finetune.evaluation.sets[{i}] ({spec['name']}): rows {spec['start']}..{spec['start'] + spec['count'] - 1} "
                              f"asked for, {spec['file']} has {len(table)}")


def _check_align(align: dict, prompts: dict, count: int, workdir: Path) -> None:
    for key in ("refusals", "benign_prompts", "benign_eval_prompts", "harmful_file"):
        if not (workdir / align[key]).is_file():
            raise ConfigError(f"align.{key}: {align[key]} does not exist; fix the path or set align.enabled: false")
    _check_rows_disjoint("align.harmful_rows", align["harmful_rows"], align["harmful_file"], prompts, count)
