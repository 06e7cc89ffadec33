# Config validation (schema + semantic checks, one place) and the paths every rule shares.
import json
import os
import re
import sys
from pathlib import Path

from snakemake.utils import validate

from safety_landscape.plan import (
    axes,
    capability_files,
    checkpoint_name,
    finetune_datasets,
    finetune_evaluations,
    generation_dtype,
    generation_jobs,
    generation_settings,
    guard_judges,
    is_2d,
    judge_models,
    judge_specs,
    landscape_prompts,
    landscape_setup,
    landscapes,
    main_variant,
    model_specs,
    refusal_judge,
    precision_settings,
    reused_points,
    system_prompt_texts,
)
from safety_landscape.provenance import engine_code_digest, script_code_digest
from safety_landscape.validation import MODEL_JUDGES, ConfigError, check_config


validate(config, schema="../config/schema.yaml")
try:
    check_config(config)
except ConfigError as err:
    sys.exit(f"Invalid configuration: {err}")

SCRIPTS = Path(workflow.current_basedir).parent / "scripts"
RUN = f"results/{config['run']}"
CACHE = "results/cache"
# The safety-finetuned model is shared by every run of the same base model.
ALIGNED = f"results/models/{config['model']['name']}-aligned"
MODELS = model_specs(config)
AXES = {axis.name: axis for axis in axes(config)}
LANDSCAPES = {ls.name: ls for ls in landscapes(config)}
MAIN = [name for name, ls in LANDSCAPES.items() if ls.group == "main"]
# The prompts each landscape answers, resolved ({set, file, column, where, start, count}): the harmful
# prompts, or over_refusal's safe prompts for the over-refusal landscapes ("d1@over-refusal").
PROMPTS = {name: landscape_prompts(config, ls) for name, ls in LANDSCAPES.items()}
HARMFUL = PROMPTS[MAIN[0]]
OVER_REFUSAL = [name for name, ls in LANDSCAPES.items() if ls.group == "over-refusal"]
# The judge whose "not jailbroken" counts as a refusal of a safe prompt (over-refusal landscapes only).
REFUSAL_JUDGE = refusal_judge(config) if OVER_REFUSAL else None
# System prompt variants: the main landscape's label first; "d1@aoa" is d1 answered under the variant "aoa".
SYSTEM_PROMPTS = system_prompt_texts(config)
# The generation settings with the main landscape's system prompt and early stop resolved.
GENERATION = generation_settings(config)
VARIANT_LANDSCAPES = {
    variant: MAIN if variant == main_variant(config) else [f"{name}@{variant}" for name in MAIN] for variant in SYSTEM_PROMPTS
}
JUDGES = judge_specs(config)
# Model judges given by hub id, by judge id: the model rule downloads each (its spec is in MODELS).
JUDGE_MODELS = judge_models(config)
# Judges in Llama Guard's format, by id: tables/guard_categories.csv counts their category codes.
GUARD_JUDGES = guard_judges(config)
# The landscape's setup as the report's captions state it.
SETUP = landscape_setup(config)
# Generation jobs by (landscape, number); the job of every point; points that wait for an earlier one.
JOBS = {(job.landscape.name, job.number): job for job in generation_jobs(config)}
JOB_OF = {point.id: (job.landscape.name, job.number) for job in JOBS.values() for point in job.points}
REUSED = reused_points(config)
# The files the capability jobs read: references, zero-shot questions and MMLU CSVs (those configured).
CAPABILITY_FILES = capability_files(config["capability"]) if config["capability"]["enabled"] else []
PROJECTED = [entry["name"] for entry in config["landscape"]["project"]]
# Finetuning: one folder per dataset under FT, a checkpoint per epoch; "aligned" is the model they start from.
FT = f"{RUN}/finetune"
FT_DATASETS = {ds["name"]: ds for ds in finetune_datasets(config)}
FT_EPOCHS = range(1, config["finetune"]["epochs"] + 1)
FT_SAVED = {checkpoint_name(ds, e): (ds, e) for ds in FT_DATASETS for e in FT_EPOCHS}
EVAL_SETS = {spec["name"]: spec for spec in config["finetune"]["evaluation"]["sets"]}
# The settings each finetune rule reads (so that changing the evaluation sets or the plane retrains nothing).
FT_DATA_SETTINGS = {key: config["finetune"][key] for key in
                    ("harmful_file", "harmful_column", "target_column", "harmful_rows", "safe_rows", "safe_responses", "refusals")}
FT_TRAINING_SETTINGS = {key: value for key, value in config["finetune"].items()
                        if key not in {*FT_DATA_SETTINGS, "enabled", "datasets", "evaluation", "interpolation", "plane"}}
FT_LINES = [name for name, ls in LANDSCAPES.items() if ls.group == "finetune"]
FT_PLANE = next((name for name, ls in LANDSCAPES.items() if ls.group == "finetune-plane"), None)


wildcard_constraints:
    model="|".join(re.escape(name) for name in MODELS),
    axis="[dif][0-9]+",
    landscape="[dif][0-9]+(-[dif][0-9]+)?(@[A-Za-z0-9_-]+)?",
    job="[0-9]+",
    dataset="|".join(re.escape(name) for name in FT_DATASETS) or "no-dataset",
    group="|".join(["aligned", *(re.escape(name) for name in FT_DATASETS)]),
    checkpoint="|".join(["aligned", *(re.escape(name) for name in FT_SAVED)]),
    point="a[+-][0-9]+\\.[0-9]+(_b[+-][0-9]+\\.[0-9]+)?",
    judge="|".join(re.escape(j) for j in JUDGES),


def code(script, keywords=True):
    """A rule parameter that reruns the rule when scripts/`script` or the package code it runs changes
    (safety_landscape/provenance.py). keywords=False: the refusal keywords cannot change its outputs."""
    return script_code_digest(SCRIPTS / script, ignore=() if keywords else ("refusals",))


def judge_gpus(judge):
    """GPUs of a judge job: one for a classifier model unless the judge's device is the CPU; keyword and
    endpoint judges need none."""
    spec = JUDGES[judge]
    return int(spec["name"] in MODEL_JUDGES and spec["device"] != "cpu")


def judge_model_manifest(judge):
    """The manifest of a judge's model when the judge names it by hub id, else None (a local folder)."""
    return manifest(JUDGE_MODELS[judge]["name"]) if judge in JUDGE_MODELS else None


def landscape_generation(landscape):
    """GENERATION for one landscape: its system prompt variant's text, and the finetune lines' and
    plane's own dtype when finetune.interpolation.dtype sets one."""
    return GENERATION | {"system_prompt": SYSTEM_PROMPTS[landscape.variant or main_variant(config)],
                         "dtype": generation_dtype(config, landscape)}


def job_of(wildcards):
    return JOBS[(wildcards.landscape, int(wildcards.job))]


def job_file(folder, landscape, number):
    """The file under `folder` (responses or capability) of one generation job."""
    return f"{RUN}/{folder}/{landscape}/job{number}.jsonl"


def job_files(folder, names):
    """The per-job files under `folder` of the landscapes `names`."""
    return [job_file(folder, name, number) for name in names for (ls, number) in JOBS if ls == name]


def same_weight_inputs(folder):
    """Input function: the files under `folder` (responses or capability) of the earlier jobs whose
    points have the weights of this job's points (their results come from the cache)."""
    return lambda wc: sorted({job_file_of(REUSED[p.id], folder) for p in job_of(wc).points if p.id in REUSED})


def job_file_of(point_id, folder):
    """The file under `folder` of the job that computes a point."""
    return job_file(folder, *JOB_OF[point_id])


def manifest(model):
    return f"results/models/{model}/manifest.json"


def model_manifest(name):
    """Manifest of a model by name: a finetuning checkpoint, or a converted source model."""
    if name in FT_SAVED:
        dataset, epoch = FT_SAVED[name]
        return f"{FT}/{dataset}/epoch{epoch}/manifest.json"
    return manifest(name)


def checkpoint_manifest(name):
    """Manifest of an evaluated checkpoint: "aligned" is the model the finetunes start from."""
    return subject_manifest() if name == "aligned" else model_manifest(name)


def evaluations_of(group):
    """(checkpoint, evaluation set) pairs of one checkpoint job: "aligned" (the model before
    finetuning) or a finetuning dataset's epochs, in epoch order."""
    return finetune_evaluation_groups()[group]


def finetune_evaluation_groups():
    """The (checkpoint, evaluation set) pairs per finetuning dataset ("aligned": the model before finetuning)."""
    groups = {}
    for checkpoint, dataset, epoch, evalset in finetune_evaluations(config):
        groups.setdefault(dataset, []).append((epoch, checkpoint, evalset))
    return {dataset: [(c, s) for _, c, s in sorted(group, key=lambda e: e[0])] for dataset, group in groups.items()}


def subject_manifest():
    """Manifest of the model whose landscape is measured: the aligned model when align is on."""
    return f"{ALIGNED}/manifest.json" if config["align"]["enabled"] else manifest(config["model"]["name"])


def axis_dirs(landscape):
    return [f"{RUN}/directions/{axis}" for axis in LANDSCAPES[landscape].axes]


def landscape_judgments(names):
    """Judgment files of landscapes, one per judge and landscape."""
    return [f"{RUN}/judgments/{judge}/{name}.jsonl" for judge in JUDGES for name in names]


def checkpoint_judgments():
    """Judgment files of the checkpoint evaluations, one per judge and checkpoint job."""
    return [f"{FT}/judgments/{judge}/{group}.jsonl" for judge in JUDGES for group in finetune_evaluation_groups()]


def figure_targets():
    if is_2d(config):
        return [f"{RUN}/figures/landscape_2d_{kind}.{ext}" for kind in ("contour", "surface") for ext in ("png", "pdf")]
    return [f"{RUN}/figures/landscape_1d.{ext}" for ext in ("png", "pdf")]


def all_targets():
    targets = [f"{RUN}/tables/{table}.{ext}" for table in ("asr", "visage", "agreement") for ext in ("csv", "parquet")]
    targets += [f"{RUN}/summary.json", *figure_targets()]
    targets += [f"{RUN}/tables/guard_categories.csv"] if GUARD_JUDGES else []
    if config["landscape"]["precision"]:
        targets.append(f"{RUN}/tables/precision.csv")
    targets += [f"{RUN}/projections/{name}.json" for name in PROJECTED]
    if config["align"]["enabled"]:
        targets.append(f"{ALIGNED}/eval.json")
    if config["system_prompts"]:
        targets += [f"{RUN}/tables/system_prompts.csv", *(f"{RUN}/figures/system_prompts.{ext}" for ext in ("png", "pdf"))]
    if config["capability"]["enabled"]:
        targets += [f"{RUN}/tables/capability.csv", *(f"{RUN}/figures/capability.{ext}" for ext in ("png", "pdf"))]
    if OVER_REFUSAL:
        targets += [f"{RUN}/tables/over_refusal.csv", *(f"{RUN}/figures/over_refusal.{ext}" for ext in ("png", "pdf"))]
    return targets + finetune_targets()


def finetune_targets():
    if not FT_DATASETS:
        return []
    targets = [f"{RUN}/tables/{table}.{ext}" for table in ("finetune_asr", "table1") for ext in ("csv", "parquet")]
    targets += [f"{RUN}/tables/finetune_landscape_asr.csv", f"{RUN}/finetune/summary.json"]
    names = ["finetune_asr_by_epoch", "finetune_interpolation"] + (["finetune_trajectories"] if FT_PLANE else [])
    return targets + [f"{RUN}/figures/{name}.{ext}" for name in names for ext in ("png", "pdf")]


def bundle_files():
    """Bundle path -> file of every artifact the run publishes (an input function: the landscapes
    measured may depend on the precision decisions)."""
    measured = set(measured_landscapes())
    names = [name for name, ls in LANDSCAPES.items() if ls.group != "sequential" or name in measured]
    files = [path for path in all_targets() if path.startswith(f"{RUN}/")]
    # an adaptive run publishes its main landscapes' gathered responses and rounds (rules/adaptive.smk)
    files += job_files("responses", [name for name in names if not (ADAPTIVE and name in MAIN)]) + adaptive_files()
    files += landscape_judgments([name for name in names if name not in OVER_REFUSAL])
    files += [f"{RUN}/judgments/{REFUSAL_JUDGE}/{name}.jsonl" for name in OVER_REFUSAL]
    files += [f"{RUN}/directions/{axis}/direction.json" for axis in AXES if any(axis in LANDSCAPES[n].axes for n in names)]
    if config["capability"]["enabled"]:
        files += job_files("capability", MAIN)
    files += [f"{FT}/responses/{group}.jsonl" for group in finetune_evaluation_groups()] + checkpoint_judgments()
    files += [f"{FT}/{dataset}/{name}" for dataset in FT_DATASETS for name in ("pairs.jsonl", "training.json")]
    files += [f"{FT}/projections/{name}.json" for name in FT_SAVED] if FT_PLANE else []
    bundle = {os.path.relpath(path, RUN): path for path in files}
    if config["align"]["enabled"]:
        bundle["aligned/eval.json"] = f"{ALIGNED}/eval.json"
    return bundle


# Sequential directions (landscape.precision, rules/precision.smk): every landscape a decision may ask
# for, in order (MAIN first, then the group "sequential"), and the ones the decisions asked for.
PRECISION = precision_settings(config)
CANDIDATES = MAIN + [name for name, ls in LANDSCAPES.items() if ls.group == "sequential"]


def measured_landscapes():
    """The main landscapes VISAGE averages: MAIN, plus (landscape.precision) every landscape the
    decisions asked for. Call it from input functions only: a decision not yet made stops the DAG
    there, and Snakemake calls it again once the decision is written."""
    if not PRECISION:
        return MAIN
    count = len(MAIN)
    while json.loads(Path(checkpoints.precision.get(measured=count).output[0]).read_text())["more"]:
        count += 1
    return CANDIDATES[:count]


def decided_landscapes(wildcards):
    """The landscapes the decision after `measured` landscapes reads: the first `measured`."""
    count = int(wildcards.measured)
    if not PRECISION or not len(MAIN) <= count <= len(CANDIDATES):
        raise ValueError(f"no decision after {count} landscapes: decisions follow min_directions up to max_directions")
    return CANDIDATES[:count]


# ---- adaptive grids (rules/adaptive.smk) ----
from safety_landscape.adaptive import adaptive_settings
from safety_landscape.io import read_json

ADAPTIVE = adaptive_settings(config)  # None when adaptive grids are off
ADAPTIVE_DIR = f"{RUN}/adaptive"


def adaptive_files():
    """The files an adaptive run publishes per main landscape: all responses, and its rounds."""
    if not ADAPTIVE:
        return []
    return [f"{ADAPTIVE_DIR}/{name}/{kind}" for name in MAIN for kind in ("responses.jsonl", "rounds.json")]


def plan_converged(landscape, r):
    """Whether a landscape's plan of round r has no new points; read once the checkpoint that writes it has run."""
    return read_json(checkpoints.adaptive_plan.get(landscape=landscape, round=r).output[0])["converged"]


def adaptive_rounds(landscape):
    """Rounds with points of an adaptive landscape: its plans are read one after the other up to the
    converged one (which has no points)."""
    r = 0
    while not plan_converged(landscape, r):
        r += 1
    return r


def round_plans(r):
    """The plans of round r: those of the main landscapes still sampling after round r - 1 (all for round 0)."""
    return [f"{ADAPTIVE_DIR}/{name}/plan{r}.json" for name in MAIN if r == 0 or not plan_converged(name, r - 1)]


def round_file(r, name):
    """A file of round r, which holds every main landscape's points of that round."""
    return f"{ADAPTIVE_DIR}/round{r}/{name}"
