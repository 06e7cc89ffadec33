# Judge stage: every response of one landscape (or of one checkpoint job) with one judge, verdicts
# cached per response; the judgment records keep the responses' labels (landscape and coordinates,
# or checkpoint and evaluation set).


# A judge job takes a GPU for a classifier model unless the judge's device is the CPU; keyword and
# endpoint judges need none.
CLASSIFIER_JUDGES = ("guard", "harmbench-cls")


rule judge:
    input:
        lambda wc: job_files("responses", [wc.landscape]),
    output:
        f"{RUN}/judgments/{{judge}}/{{landscape}}.jsonl",
    params:
        code=code("judge.py"),
        spec=lambda wc: JUDGES[wc.judge],
        cache=f"{CACHE}/judgments",
    resources:
        gpu=lambda wc: int(JUDGES[wc.judge]["name"] in CLASSIFIER_JUDGES and JUDGES[wc.judge]["device"] != "cpu"),
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
    resources:
        gpu=lambda wc: int(JUDGES[wc.judge]["name"] in CLASSIFIER_JUDGES and JUDGES[wc.judge]["device"] != "cpu"),
    log:
        f"{FT}/logs/judge/{{judge}}/{{group}}.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/judge.py"
