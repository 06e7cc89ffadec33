rule visage:
    input:
        expand(f"{RUN}/judgments/{JUDGE}/{{direction}}/{{point}}.jsonl", direction=DIRECTIONS, point=POINTS),
    output:
        asr=report(f"{RUN}/tables/asr.csv", caption="../report/asr.rst", category="Tables"),
        visage=report(f"{RUN}/tables/visage.csv", caption="../report/visage.rst", category="Tables"),
        summary=f"{RUN}/summary.json",
    params:
        coefficients=[point_coefficient(p) for p in POINTS],
        directions=DIRECTIONS,
        points=POINTS,
        judge=JUDGE,
        visage=config["visage"],
        run=config["run"],
    log:
        f"{RUN}/logs/visage.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/visage.py"
