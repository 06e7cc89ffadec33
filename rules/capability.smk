# Capability at every point of the main landscapes, in the generation jobs' chunks (the model loaded
# once per job): perplexity of reference answers, MMLU k-shot accuracy and zero-shot multiple-choice
# accuracy, with the weights set as for generation. A point with the weights of an earlier point
# (every a = 0) waits for it and takes its scores from the cache.
from safety_landscape.prompts import mmlu_subjects


def capability_files(capability: dict) -> list[str]:
    """The files the capability jobs read: references, zero-shot questions and MMLU CSVs (those configured)."""
    files = [capability["references"]] + ([capability["questions"]] if capability["questions"] else [])
    mmlu = capability["mmlu"]
    if mmlu["folder"]:
        subjects = mmlu_subjects(mmlu["folder"], mmlu["subjects"])
        splits = ("dev", "test") if mmlu["shots"] else ("test",)
        files += [f"{mmlu['folder']}/{split}/{s}_{split}.csv" for split in splits for s in subjects]
    return files


CAPABILITY_FILES = capability_files(config["capability"]) if config["capability"]["enabled"] else []



def same_weight_capability(wildcards):
    """Capability files of the earlier jobs whose points have the weights of this job's points."""
    return sorted({responses_of(REUSED[p.id]).replace("/responses/", "/capability/") for p in job_of(wildcards).points if p.id in REUSED})


rule capability:
    input:
        model=subject_manifest(),
        sets=CAPABILITY_FILES,
        points=lambda wc: f"{RUN}/points/{wc.landscape}",
        same_weights=same_weight_capability,
    output:
        f"{RUN}/capability/{{landscape}}/job{{job}}.jsonl",
    params:
        points=lambda wc: [{"landscape": p.landscape, "name": p.name, **dict(zip("ab", p.coords))} for p in job_of(wc).points],
        capability=config["capability"],
        generation=GENERATION,
        cache=f"{CACHE}/capability",
        trust_remote_code=config["model"]["trust_remote_code"],
        gpu_locks=f"{CACHE}/gpu-locks",
    threads: config["capability"]["threads"]
    resources:
        gpu=0 if config["generation"]["device"] == "cpu" else 1,
    log:
        f"{RUN}/logs/capability/{{landscape}}/job{{job}}.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/capability.py"


rule capability_table:
    input:
        scores=job_files("capability", MAIN),
        asr=f"{RUN}/tables/asr.csv",
    output:
        report(f"{RUN}/tables/capability.csv", caption="../report/capability_table.rst", category="Capability"),
    params:
        setup=SETUP,
        judge=next(iter(JUDGES)),
    log:
        f"{RUN}/logs/capability_table.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/capability_table.py"
