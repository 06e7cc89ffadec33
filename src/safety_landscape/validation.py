"""Config checks beyond the JSON schema: every setting that would fail later fails here, before any
work, with a message that names the key and the fix. Checks read the config; they never change it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .modeling import resolve_source
from .plan import (
    KEYWORD_JUDGES,
    LANDSCAPE_KINDS,
    MODEL_JUDGES,
    ConfigError,
    grid_coordinates,
    is_2d,
    judge_specs,
    landscapes,
    main_variant,
    model_specs,
    refusal_judge,
)
from .prompts import (
    PAIR_FORMAT,
    filter_rows,
    load_mmlu,
    load_multiple_choice,
    load_pairs,
    load_prompt_table,
    load_references,
    prompt_source,
    select_contexts,
)

__all__ = ["MODEL_JUDGES", "ConfigError", "check_config"]

JUDGE_NEEDS = {name: ("model",) for name in MODEL_JUDGES} | {"endpoint": ("url", "model")}


def _check_judges(config: dict, workdir: Path) -> None:
    """Judge ids are unique and every judge has its required settings; early stop only with keyword judges."""
    ids = [spec.get("id", spec["name"]) for spec in config["judges"]]
    if config["generation"]["stop_on_refusal"] and not all(spec["name"] in KEYWORD_JUDGES for spec in config["judges"]):
        raise ConfigError(
            "generation.stop_on_refusal: early stop truncates responses, which can change the verdict of "
            "every judge but the keyword judge; set it to false (or null) when such a judge is configured"
        )
    for i, spec in enumerate(config["judges"]):
        missing = [key for key in JUDGE_NEEDS.get(spec["name"], ()) if not spec.get(key)]
        if missing:
            raise ConfigError(f"judges[{i}] ({spec['name']}): set {', '.join(missing)}")
        if spec["name"] in MODEL_JUDGES:
            _check_judge_model(f"judges[{i}] ({spec['name']})", spec, workdir)
        elif spec.get("revision"):
            raise ConfigError(f"judges[{i}] ({spec['name']}): revision is for model judges given by hub id; remove it")
        if spec["name"] == "endpoint" and spec.get("rubric") and spec.get("format", "plain") != "plain":
            raise ConfigError(
                f"judges[{i}] (endpoint): rubric is for format plain; the {spec['format']} format has its own prompt"
            )
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ConfigError(f"judges: ids {duplicates} are used twice; give each judge its own id")


def _check_judge_model(key: str, spec: dict, workdir: Path) -> None:
    """A model judge's `model` is a local folder of Hugging Face files or a hub id (`revision` only with a hub id)."""
    model, revision = spec["model"], spec.get("revision")
    if (workdir / model).is_dir():
        if revision:
            raise ConfigError(
                f"{key}: revision {revision!r} is for hub ids, and model {model!r} is a local folder; remove revision"
            )
        return
    try:
        kind = resolve_source(model).kind
    except ValueError:
        kind = None
    if kind != "hub":
        raise ConfigError(
            f"{key}: model {model!r} is neither a local folder nor a hub id; give the folder of the classifier's Hugging "
            "Face files, or its hub id (such as meta-llama/Llama-Guard-3-8B) with revision: <commit>"
        )


def _check_engine(name: str) -> None:
    """A user engine ("package.module:ClassName") imports and has the engine interface (the built-in ones need no check)."""
    if name in ("hf", "vllm"):
        return
    from .engines import custom_engine_class  # imports torch: only for user engines

    try:
        custom_engine_class(name)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def check_config(config: dict, workdir: str | Path = ".") -> None:
    """Semantic checks the schema cannot express; raises ConfigError naming the key and the fix."""
    workdir = Path(workdir)
    _check_judges(config, workdir)
    _check_engine(config["generation"]["engine"])
    _check_landscape(config)
    _check_precision(config)
    _check_adaptive(config)
    sources = [("model.source", config["model"])]
    for group in ("endpoints", "project"):
        sources += [(f"landscape.{group}[{i}].source", entry) for i, entry in enumerate(config["landscape"][group])]
    for key, spec in sources:
        try:
            resolve_source(spec["source"], spec.get("gguf_file"), key, spec.get("revision"))
        except ValueError as err:
            raise ConfigError(str(err)) from None
    model_specs(config)
    template = config["model"]["chat_template"]
    if template and not (workdir / template).is_file():
        raise ConfigError(f"model.chat_template: {template} does not exist; give a Jinja template file or null")
    prompts, count = _check_prompts(config["prompts"], "prompts", "advbench", workdir)
    if prompts["context_column"]:
        try:
            select_contexts(workdir / prompts["file"], prompts["context_column"], prompts["start"], count, prompts["where"])
        except ValueError as err:
            raise ConfigError(str(err)) from None
    if config["over_refusal"]["enabled"]:
        _check_prompts(config["over_refusal"], "over_refusal", "xstest-safe", workdir)
        _check_refusal_judge(config)
    align = config["align"]
    if align["enabled"]:
        _check_align(align, prompts, count, workdir)
    if config["finetune"]["enabled"]:
        _check_finetune(config["finetune"], prompts, count, workdir)
    _check_system_prompts(config, workdir)
    if config["capability"]["enabled"]:
        _check_capability(config["capability"], workdir)


def _check_prompts(spec: dict, key: str, default: str, workdir: Path) -> tuple[dict, int]:
    """The prompts setting `key` resolved (a shipped set or a file) and the number of prompts it selects,
    after checking that the file holds them."""
    try:
        prompts = prompt_source(spec, key, default)
        table = load_prompt_table(workdir / prompts["file"], prompts["column"], key)
        table = filter_rows(table, prompts["where"], prompts["file"])
    except ValueError as err:
        raise ConfigError(str(err)) from None
    count = prompts["count"] if prompts["count"] is not None else len(table) - prompts["start"]
    if count < 1 or prompts["start"] + count > len(table):
        where = f"set {prompts['set']!r}" if prompts["set"] else prompts["file"]
        raise ConfigError(
            f"{key}.count: rows {prompts['start']}..{prompts['start'] + count - 1} asked for, {where} has {len(table)}; "
            f"lower {key}.start or {key}.count"
        )
    return prompts, count


REFUSAL_JUDGES = (*KEYWORD_JUDGES, "refusal", "endpoint")  # judges whose "not jailbroken" means the model declined


def _check_refusal_judge(config: dict) -> None:
    """over_refusal.judge names a configured judge whose verdict tells refusal from compliance."""
    judge, specs = refusal_judge(config), judge_specs(config)
    if judge not in specs:
        raise ConfigError(f"over_refusal.judge: {judge!r} is not a judge id of judges ({', '.join(specs)}); name one of them")
    if specs[judge]["name"] not in REFUSAL_JUDGES:
        raise ConfigError(
            f"over_refusal.judge: {judge!r} is a {specs[judge]['name']} judge, which rates harm, not refusal (a safe answer "
            f"would count as a refusal); choose a judge of kind {', '.join(REFUSAL_JUDGES)}"
        )


def _check_system_prompt_files(config: dict, workdir: Path) -> None:
    for key, spec in (
        ("model.system_prompt", config["model"]["system_prompt"]),
        ("generation.system_prompt", config["generation"]["system_prompt"]),
    ):
        if isinstance(spec, dict) and not (workdir / spec["file"]).is_file():
            raise ConfigError(f"{key}: file {spec['file']} does not exist; fix the path (e.g. data/system_prompts/llama2.txt)")


def _check_system_prompts(config: dict, workdir: Path) -> None:
    _check_system_prompt_files(config, workdir)
    names = [main_variant(config)]
    for i, variant in enumerate(config["system_prompts"]):
        key = f"system_prompts[{i}] ({variant['name']})"
        if variant["name"] in names:
            raise ConfigError(
                f"{key}: the name is taken ({names}; {names[0]!r} is the main landscape's "
                "generation.system_prompt); choose another"
            )
        names.append(variant["name"])
        if "text" in variant and "file" in variant:
            raise ConfigError(f"{key}: give text or file, not both")
        if "file" in variant and not (workdir / variant["file"]).is_file():
            raise ConfigError(f"{key}: file {variant['file']} does not exist; fix the path")
    if config["system_prompts"] and not config["generation"]["chat_template"]:
        raise ConfigError(
            "system_prompts: system prompts need the chat template; set generation.chat_template: true or system_prompts: []"
        )


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
    needed = LANDSCAPE_KINDS[ls["kind"]].endpoints
    if len(ls["endpoints"]) != needed:
        raise ConfigError(
            f"landscape.endpoints: kind {ls['kind']!r} needs {needed} endpoint model(s) ({{name, source}}), "
            f"{len(ls['endpoints'])} given"
        )
    grid_coordinates(config)
    if ls["project"] and not is_2d(config) and len(landscapes(config)) > 1:
        raise ConfigError("landscape.project: projections go on one line or plane; use a 2D kind or an interpolation kind")


def _check_precision(config: dict) -> None:
    """Sequential directions: a random kind, min <= max, a bootstrap to decide with, and nothing that
    needs the landscapes fixed before the run (system prompt variants, capability, projections, over-refusal)."""
    ls, precision = config["landscape"], config["landscape"].get("precision")
    if not precision:
        return
    if ls["kind"] not in ("1d-random", "2d-random"):
        raise ConfigError(
            f"landscape.precision: kind {ls['kind']!r} has fixed directions; sequential directions need "
            "1d-random or 2d-random. Remove landscape.precision"
        )
    if precision["min_directions"] > precision["max_directions"]:
        raise ConfigError(
            f"landscape.precision: min_directions {precision['min_directions']} > max_directions "
            f"{precision['max_directions']}; raise max_directions"
        )
    if ls["kind"] == "1d-random" and ls["directions"] != precision["min_directions"]:
        raise ConfigError(
            f"landscape.directions ({ls['directions']}) and landscape.precision.min_directions "
            f"({precision['min_directions']}) disagree: with precision the run starts with min_directions "
            "directions; set both to the same number"
        )
    if not config["visage"]["bootstrap"]:
        raise ConfigError("landscape.precision decides from the bootstrap interval; set visage.bootstrap > 0 (e.g. 1000)")
    for key, used in (
        ("system_prompts", config["system_prompts"]),
        ("capability.enabled", config["capability"]["enabled"]),
        ("landscape.project", ls["project"]),
        ("over_refusal.enabled", config["over_refusal"]["enabled"]),
    ):
        if used:
            raise ConfigError(
                f"landscape.precision: {key} needs the directions fixed before the run; set "
                "landscape.directions instead of landscape.precision, or turn it off"
            )


def _check_adaptive(config: dict) -> None:
    """Adaptive grids: strides that nest, and only the main landscape's stages (their points are chosen as it runs)."""
    adaptive = config["landscape"].get("adaptive") or {}
    if not adaptive.get("enabled"):
        return
    if adaptive["min_stride"] > adaptive["initial_stride"]:
        raise ConfigError(
            f"landscape.adaptive: min_stride {adaptive['min_stride']} > initial_stride {adaptive['initial_stride']}; "
            "the rounds split boxes down to min_stride grid steps, so set min_stride <= initial_stride"
        )
    for key, on in (
        ("system_prompts", bool(config["system_prompts"])),
        ("capability.enabled", config["capability"]["enabled"]),
        ("over_refusal.enabled", config["over_refusal"]["enabled"]),
    ):
        if on:
            raise ConfigError(
                f"landscape.adaptive: {key} measures every point of the configured grid, which an adaptive run does not "
                f"sample; turn {key} off or set landscape.adaptive.enabled: false"
            )
    if config["landscape"].get("precision"):
        raise ConfigError(
            "landscape.adaptive and landscape.precision: sequential directions with adaptive grids are not supported; "
            "turn one of them off"
        )


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
            raise ConfigError(
                f"{key}: shots {shots} > the {harmful_span} rows of finetune.harmful_rows; widen the rows or lower shots"
            )
        if ds["kind"] == "mix" and shots > safe_span:
            raise ConfigError(f"{key}: shots {shots} > the {safe_span} rows of finetune.safe_rows; widen the rows or lower shots")
    plane = ft["plane"]["datasets"]
    if plane and (len(plane) != 2 or plane[0] == plane[1] or not set(plane) <= set(names)):
        raise ConfigError(
            f"finetune.plane.datasets: {plane} must name two different datasets of finetune.datasets {names} (or be [])"
        )
    for i, spec in enumerate(ft["evaluation"]["sets"]):
        try:
            table = load_prompt_table(workdir / spec["file"], spec["column"])
        except ValueError as err:
            raise ConfigError(f"finetune.evaluation.sets[{i}]: {err}") from None
        if spec["start"] + spec["count"] > len(table):
            raise ConfigError(
                f"finetune.evaluation.sets[{i}] ({spec['name']}): rows {spec['start']}..{spec['start'] + spec['count'] - 1} "
                f"asked for, {spec['file']} has {len(table)}"
            )


def _check_align(align: dict, prompts: dict, count: int, workdir: Path) -> None:
    for key in ("refusals", "benign_prompts", "benign_eval_prompts", "harmful_file"):
        if not (workdir / align[key]).is_file():
            raise ConfigError(f"align.{key}: {align[key]} does not exist; fix the path or set align.enabled: false")
    _check_rows_disjoint("align.harmful_rows", align["harmful_rows"], align["harmful_file"], prompts, count)
