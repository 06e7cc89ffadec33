# One rule per generation job: the model loads once per job, outputs stay one file per point.
for job in generation_jobs(config):

    rule:
        name:
            f"generate_{job.name}"
        input:
            model=subject_manifest(),
            prompts=config["prompts"]["file"],
            points=[f"{RUN}/points/{p.id}.safetensors" for p in job.points],
        output:
            [f"{RUN}/responses/{p.id}.jsonl" for p in job.points],
        params:
            labels=[{"landscape": p.landscape, **dict(zip("ab", p.coords))} for p in job.points],
            prompts=config["prompts"],
            generation=config["generation"],
            cache=f"{CACHE}/responses",
            trust_remote_code=config["model"]["trust_remote_code"],
            gpu_locks=f"{CACHE}/gpu-locks",
        threads: config["generation"]["threads"]
        resources:
            gpu=0 if config["generation"]["device"] == "cpu" else config["generation"]["tensor_parallel_size"],
        log:
            f"{RUN}/logs/generate/{job.name}.log",
        conda:
            "../envs/safety-landscape.yaml"
        script:
            "../scripts/generate.py"
