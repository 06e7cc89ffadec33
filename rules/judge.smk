rule judge:
    input:
        expand(f"{RUN}/responses/{{{{direction}}}}/{{point}}.jsonl", point=POINTS),
    output:
        expand(f"{RUN}/judgments/{JUDGE}/{{{{direction}}}}/{{point}}.jsonl", point=POINTS),
    params:
        judge=JUDGE,
    log:
        f"{RUN}/logs/judge/{JUDGE}/{{direction}}.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/judge.py"
