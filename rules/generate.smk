# One rule per generation job: the model loads once per job, outputs stay one file per point.
# A point with the weights of an earlier landscape's point waits for it and takes its responses from the cache.
# A system prompt variant's landscape answers at the main landscape's point artifacts.
REUSED = reused_points(config)
for job in generation_jobs(config):

    rule:
        name:
            f"generate_{job.name}"
        input:
            model=subject_manifest(),
            prompts=config["prompts"]["file"],
            points=[f"{RUN}/points/{job.landscape.point_landscape}/{p.name}.safetensors" for p in job.points],
            same_weights=[f"{RUN}/responses/{REUSED[p.id]}.jsonl" for p in job.points if p.id in REUSED],
        output:
            [f"{RUN}/responses/{p.id}.jsonl" for p in job.points],
        params:
            labels=[{"landscape": p.landscape, **dict(zip("ab", p.coords))} for p in job.points],
            prompts=config["prompts"],
            generation=generation_settings(job.landscape),
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



# One job per finetuning dataset (and one for the model before finetuning): it answers every
# evaluation set with each of its checkpoints in turn.
for group, evaluations in finetune_evaluation_groups().items():

    rule:
        name:
            f"generate_checkpoints_{group}"
        input:
            models=sorted({checkpoint_manifest(checkpoint) for checkpoint, _ in evaluations}),
            prompts=sorted({EVAL_SETS[evalset]["file"] for _, evalset in evaluations}),
        output:
            [f"{FT}/responses/{checkpoint}/{evalset}.jsonl" for checkpoint, evalset in evaluations],
        params:
            evaluations=[(checkpoint_manifest(checkpoint), checkpoint, EVAL_SETS[evalset]) for checkpoint, evalset in evaluations],
            generation=GENERATION,
            cache=f"{CACHE}/responses",
            trust_remote_code=config["model"]["trust_remote_code"],
            gpu_locks=f"{CACHE}/gpu-locks",
        threads: config["generation"]["threads"]
        resources:
            gpu=0 if config["generation"]["device"] == "cpu" else config["generation"]["tensor_parallel_size"],
        log:
            f"{FT}/logs/generate/{group}.log",
        conda:
            "../envs/safety-landscape.yaml"
        script:
            "../scripts/generate_checkpoints.py"
