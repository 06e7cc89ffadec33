# Generate stage: greedy answers at every point of one generation job of one landscape (the model
# loads once per job), written as one JSONL per job whose records carry their landscape and
# coordinates. A point with the weights of an earlier landscape's point waits for that point's job
# and takes its responses from the content-addressed cache.


rule generate:
    input:
        model=subject_manifest(),
        prompts=lambda wc: PROMPTS[wc.landscape]["file"],
        points=lambda wc: f"{RUN}/points/{LANDSCAPES[wc.landscape].point_landscape}",
        same_weights=same_weight_inputs("responses"),
    output:
        f"{RUN}/responses/{{landscape}}/job{{job}}.jsonl",
    params:
        code=code("generate.py", keywords=GENERATION["stop_on_refusal"]),
        engine_code=engine_code_digest(GENERATION["engine"]),
        points=lambda wc: [{"landscape": p.landscape, "name": p.name, **dict(zip("ab", p.coords))} for p in job_of(wc).points],
        prompts=lambda wc: PROMPTS[wc.landscape],
        generation=lambda wc: landscape_generation(LANDSCAPES[wc.landscape]),
        cache=f"{CACHE}/responses",
        trust_remote_code=config["model"]["trust_remote_code"],
        gpu_locks=f"{CACHE}/gpu-locks",
    threads: config["generation"]["threads"]
    resources:
        gpu=0 if config["generation"]["device"] == "cpu" else config["generation"]["tensor_parallel_size"],
    log:
        f"{RUN}/logs/generate/{{landscape}}/job{{job}}.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/generate.py"


# Every checkpoint of one finetuning dataset (or the model before finetuning, "aligned") answers
# every evaluation set, one checkpoint after the other; records carry checkpoint and set.
rule generate_checkpoints:
    input:
        models=lambda wc: sorted({checkpoint_manifest(checkpoint) for checkpoint, _ in evaluations_of(wc.group)}),
        prompts=lambda wc: sorted({EVAL_SETS[evalset]["file"] for _, evalset in evaluations_of(wc.group)}),
    output:
        f"{FT}/responses/{{group}}.jsonl",
    params:
        code=code("generate_checkpoints.py", keywords=GENERATION["stop_on_refusal"]),
        engine_code=engine_code_digest(GENERATION["engine"]),
        evaluations=lambda wc: [(checkpoint_manifest(c), c, EVAL_SETS[s]) for c, s in evaluations_of(wc.group)],
        generation=GENERATION,
        cache=f"{CACHE}/responses",
        trust_remote_code=config["model"]["trust_remote_code"],
        gpu_locks=f"{CACHE}/gpu-locks",
    threads: config["generation"]["threads"]
    resources:
        gpu=0 if config["generation"]["device"] == "cpu" else config["generation"]["tensor_parallel_size"],
    log:
        f"{FT}/logs/generate/{{group}}.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/generate_checkpoints.py"
