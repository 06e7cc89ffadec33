# A study: the main workflow (the top-level Snakefile) on several runs that share prompts, directions,
# decoding and judges, then one table and one figure comparing their 1D landscapes (the paper's Fig. 2).
#   snakemake -s rules/study.smk --cores 2 --configfile config/study/smollm2.yaml
import os
import re
import sys

from snakemake.utils import min_version

from safety_landscape.provenance import script_code_digest
from safety_landscape.study import RUN_FILES, StudyError, load_study, main_workflow_command, run_summaries

min_version("9.0")


report: "../report/study.rst"


CONFIG_DIR = os.path.join(workflow.basedir, "..", "config")
try:
    STUDY = load_study(config, os.path.join(CONFIG_DIR, "study.schema.yaml"), os.path.join(CONFIG_DIR, "schema.yaml"))
except StudyError as err:
    sys.exit(f"Invalid study configuration: {err}")

SCRIPTS = os.path.join(workflow.basedir, "..", "scripts")
OUT = f"results/studies/{STUDY.name}"
RUNS = {run.name: run for run in STUDY.runs}
SETTING = STUDY.setting
JUDGE = SETTING["judges"][0].get("id", SETTING["judges"][0]["name"])  # the first judge headlines, as in every run


localrules:
    all,
    study_config,
    compare,


wildcard_constraints:
    run="|".join(re.escape(name) for name in RUNS),


rule all:
    input:
        f"{OUT}/tables/compare.csv",
        f"{OUT}/figures/compare_1d.png",
    default_target: True


rule study_config:
    output:
        f"{OUT}/configs/{{run}}.yaml",
    params:
        code=script_code_digest(os.path.join(SCRIPTS, "study_config.py")),
        config=lambda wildcards: RUNS[wildcards.run].config,
    log:
        f"{OUT}/logs/config/{{run}}.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/study_config.py"


# Runs one after the other (each takes every core): runs of one model share its converted and aligned
# checkpoints. A run's workflow reruns when its config file changes; it then redoes only what changed.
rule study_run:
    input:
        f"{OUT}/configs/{{run}}.yaml",
    output:
        visage=f"{OUT}/runs/{{run}}/visage.csv",
        asr=f"{OUT}/runs/{{run}}/asr.csv",
        headline=f"{OUT}/runs/{{run}}/visage_summary.csv",
        summary=f"{OUT}/runs/{{run}}/summary.json",
        landscape=report(
            f"{OUT}/runs/{{run}}/landscape_1d.png", caption="../report/study_run.rst", category="Study", subcategory="Each model"
        ),
    params:
        code=script_code_digest(os.path.join(SCRIPTS, "study_run.py")),
        command=lambda wildcards, input, threads: main_workflow_command(
            sys.executable, os.path.join(workflow.basedir, "../Snakefile"), input[0], threads, STUDY.snakemake_args
        ),
        sources=lambda wildcards: {name: f"results/{wildcards.run}/{path}" for name, path in RUN_FILES.items()},
    threads: workflow.cores
    log:
        f"{OUT}/logs/run/{{run}}.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/study_run.py"


rule compare:
    input:
        visage=[f"{OUT}/runs/{run}/visage.csv" for run in RUNS],
        asr=[f"{OUT}/runs/{run}/asr.csv" for run in RUNS],
    output:
        table=report(
            f"{OUT}/tables/compare.csv", caption="../report/study_compare.rst", category="Study", subcategory="Comparison"
        ),
        parquet=f"{OUT}/tables/compare.parquet",
        headline=f"{OUT}/tables/compare_summary.csv",
        asr=f"{OUT}/tables/compare_asr.csv",
        png=report(
            f"{OUT}/figures/compare_1d.png", caption="../report/study_figure.rst", category="Study", subcategory="Comparison"
        ),
        pdf=f"{OUT}/figures/compare_1d.pdf",
    params:
        code=script_code_digest(os.path.join(SCRIPTS, "study_compare.py")),
        runs=run_summaries(STUDY),
        setting=SETTING,
        judge=JUDGE,
        definition=SETTING["visage"]["headline"],
        threshold=SETTING["visage"]["basin_threshold"],
        style=SETTING["figures"],
        title=f"{STUDY.name}: 1D safety landscapes ({SETTING['landscape']['kind']}, judge {JUDGE})",
    log:
        f"{OUT}/logs/compare.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/study_compare.py"

