# safety-landscape: perturb a model's weights along directions, generate answers to harmful
# prompts at every grid point, judge them, and compute the VISAGE safety score.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/model.smk"
include: "rules/align.smk"
include: "rules/finetune.smk"
include: "rules/directions.smk"
include: "rules/materialize.smk"
include: "rules/generate.smk"
include: "rules/adaptive.smk"
include: "rules/capability.smk"
include: "rules/judge.smk"
include: "rules/precision.smk"
include: "rules/project.smk"
include: "rules/visage.smk"
include: "rules/table1.smk"
include: "rules/table2.smk"
include: "rules/over_refusal.smk"
include: "rules/figures.smk"
include: "rules/export.smk"
include: "rules/bundle.smk"


# Rules that read tables and judgments and write small files run in the Snakemake process itself,
# not as cluster jobs. Every rule that reads or writes weights, generates or judges is a job, the
# model rule too: it may download or convert a checkpoint, and it hashes the weights.
localrules:
    all,
    visage,
    figures,
    capability_table,
    capability_figures,
    finetune_tables,
    finetune_figures,
    system_prompt_tables,
    system_prompt_figures,
    over_refusal_table,
    over_refusal_figures,
    bundle,


rule all:
    input:
        all_targets(),
        f"{RUN}/bundle/MANIFEST.json",
    default_target: True
