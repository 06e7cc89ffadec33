# Judge every response of one landscape (one rule per landscape: their grids differ) with one judge.
for ls in LANDSCAPES.values():

    rule:
        name:
            f"judge_{rule_name(ls.name)}"
        input:
            [f"{RUN}/responses/{ls.name}/{point}.jsonl" for point in points_of(ls.name)],
        output:
            [f"{RUN}/judgments/{{judge}}/{ls.name}/{point}.jsonl" for point in points_of(ls.name)],
        params:
            spec=lambda wc: JUDGES[wc.judge],
            cache=f"{CACHE}/judgments",
        log:
            f"{RUN}/logs/judge/{{judge}}/{ls.name}.log",
        conda:
            "../envs/safety-landscape.yaml"
        script:
            "../scripts/judge.py"


rule judge_checkpoints:
    input:
        [f"{FT}/responses/{checkpoint}/{evalset}.jsonl" for checkpoint, evalset in FT_EVALUATIONS],
    output:
        [f"{FT}/judgments/{{judge}}/{checkpoint}/{evalset}.jsonl" for checkpoint, evalset in FT_EVALUATIONS],
    params:
        spec=lambda wc: JUDGES[wc.judge],
        cache=f"{CACHE}/judgments",
    log:
        f"{FT}/logs/judge/{{judge}}.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/judge.py"
