# Judge stage: every response of one landscape (or of one checkpoint job) with one judge, verdicts
# cached per response; the judgment records keep the responses' labels (landscape and coordinates,
# or checkpoint and evaluation set).


rule judge:
    input:
        lambda wc: job_files("responses", [wc.landscape]),
    output:
        f"{RUN}/judgments/{{judge}}/{{landscape}}.jsonl",
    params:
        code=code("judge.py"),
        spec=lambda wc: JUDGES[wc.judge],
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
        f"{FT}/responses/{{group}}.jsonl",
    output:
        f"{FT}/judgments/{{judge}}/{{group}}.jsonl",
    params:
        code=code("judge.py"),
        spec=lambda wc: JUDGES[wc.judge],
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
