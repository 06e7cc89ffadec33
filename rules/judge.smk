# Judge stage: every response of one landscape (or of one checkpoint job) with one judge, verdicts
# cached per response; the judgment records keep the responses' labels (landscape and coordinates,
# or checkpoint and evaluation set). A judge model given by hub id is the model rule's download.


rule judge:
    input:
        responses=lambda wc: job_files("responses", [wc.landscape]),
        judge_model=lambda wc: judge_model_manifest(wc.judge) or [],
    output:
        f"{RUN}/judgments/{{judge}}/{{landscape}}.jsonl",
    params:
        code=code("judge.py"),
        spec=lambda wc: JUDGES[wc.judge],
        judge_model=lambda wc: judge_model_manifest(wc.judge),
        cache=f"{CACHE}/judgments",
        gpu=lambda wc: judge_gpus(wc.judge),
        gpu_locks=f"{CACHE}/gpu-locks",
    resources:
        gpu=lambda wc: judge_gpus(wc.judge),
    log:
        f"{RUN}/logs/judge/{{judge}}/{{landscape}}.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/judge.py"


rule judge_checkpoints:
    input:
        responses=[f"{FT}/responses/{{group}}.jsonl"],
        judge_model=lambda wc: judge_model_manifest(wc.judge) or [],
    output:
        f"{FT}/judgments/{{judge}}/{{group}}.jsonl",
    params:
        code=code("judge.py"),
        spec=lambda wc: JUDGES[wc.judge],
        judge_model=lambda wc: judge_model_manifest(wc.judge),
        cache=f"{CACHE}/judgments",
        gpu=lambda wc: judge_gpus(wc.judge),
        gpu_locks=f"{CACHE}/gpu-locks",
    resources:
        gpu=lambda wc: judge_gpus(wc.judge),
    log:
        f"{FT}/logs/judge/{{judge}}/{{group}}.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/judge.py"
