rule judge:
    input:
        expand(f"{RUN}/responses/{{{{landscape}}}}/{{point}}.jsonl", point=POINTS),
    output:
        expand(f"{RUN}/judgments/{JUDGE}/{{{{landscape}}}}/{{point}}.jsonl", point=POINTS),
    params:
        judge=JUDGE,
    log:
        f"{RUN}/logs/judge/{JUDGE}/{{landscape}}.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/judge.py"
