# Capability at every point of the main landscapes, in the generation jobs' chunks (the model loaded
# once per job): perplexity of reference answers, MMLU k-shot accuracy and zero-shot multiple-choice
# accuracy, with the weights set as for generation. A point with the weights of an earlier point
# (every a = 0) waits for it and takes its scores from the cache.

rule capability:
    input:
        model=subject_manifest(),
        sets=CAPABILITY_FILES,
        points=lambda wc: f"{RUN}/points/{wc.landscape}",
        same_weights=same_weight_inputs("capability"),
    output:
        f"{RUN}/capability/{{landscape}}/job{{job}}.jsonl",
    params:
        code=code("capability.py", keywords=False),
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
        code=code("capability_table.py"),
        setup=SETUP,
        judge=next(iter(JUDGES)),
    log:
        f"{RUN}/logs/capability_table.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/capability_table.py"
