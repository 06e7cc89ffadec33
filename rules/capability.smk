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

for job in generation_jobs(config) if config["capability"]["enabled"] else []:
    if job.landscape.group != "main":
        continue

    rule:
        name:
            f"capability_{job.name}"
        input:
            model=subject_manifest(),
            sets=CAPABILITY_FILES,
            points=[f"{RUN}/points/{p.id}.safetensors" for p in job.points],
            same_weights=[f"{RUN}/capability/{REUSED[p.id]}.json" for p in job.points if p.id in REUSED],
        output:
            [f"{RUN}/capability/{p.id}.json" for p in job.points],
        params:
            labels=[{"landscape": p.landscape, **dict(zip("ab", p.coords))} for p in job.points],
            capability=config["capability"],
            generation=GENERATION,
            cache=f"{CACHE}/capability",
            trust_remote_code=config["model"]["trust_remote_code"],
            gpu_locks=f"{CACHE}/gpu-locks",
        threads: config["capability"]["threads"]
        resources:
            gpu=0 if config["generation"]["device"] == "cpu" else 1,
        log:
            f"{RUN}/logs/capability/{job.name}.log",
        conda:
            "../envs/safety-landscape.yaml"
        script:
            "../scripts/capability.py"
