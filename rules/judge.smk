rule judge:
    input:
        expand(f"{RUN}/responses/{{{{landscape}}}}/{{point}}.jsonl", point=POINTS),
    output:
        expand(f"{RUN}/judgments/{{{{judge}}}}/{{{{landscape}}}}/{{point}}.jsonl", point=POINTS),
    params:
        spec=lambda wc: JUDGES[wc.judge],
        cache=f"{CACHE}/judgments",
    log:
        f"{RUN}/logs/judge/{{judge}}/{{landscape}}.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/judge.py"
