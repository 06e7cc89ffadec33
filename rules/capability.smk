# Capability at every point of the main landscapes, in the generation jobs' chunks (the model loaded
# once per job): perplexity of reference answers and multiple-choice accuracy, with the weights set as
# for generation. A point with the weights of an earlier point (every a = 0) waits for it and takes its
# scores from the cache.
for job in generation_jobs(config) if config["capability"]["enabled"] else []:
    if job.landscape.group != "main":
        continue

    rule:
        name:
            f"capability_{job.name}"
        input:
            model=subject_manifest(),
            references=config["capability"]["references"],
            questions=config["capability"]["questions"],
            points=[f"{RUN}/points/{p.id}.safetensors" for p in job.points],
            same_weights=[f"{RUN}/capability/{REUSED[p.id]}.json" for p in job.points if p.id in REUSED],
        output:
            [f"{RUN}/capability/{p.id}.json" for p in job.points],
        params:
            labels=[{"landscape": p.landscape, **dict(zip("ab", p.coords))} for p in job.points],
            capability=config["capability"],
            generation=config["generation"],
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
