rule visage:
    input:
        expand(f"{RUN}/judgments/{JUDGE}/{{landscape}}/{{point}}.jsonl", landscape=LANDSCAPES, point=POINTS),
    output:
        asr=report(f"{RUN}/tables/asr.csv", caption="../report/asr.rst", category="Tables"),
        visage=report(f"{RUN}/tables/visage.csv", caption="../report/visage.rst", category="Tables"),
        summary=f"{RUN}/summary.json",
    params:
        coords=COORDS,
        landscapes=list(LANDSCAPES),
        judge=JUDGE,
        visage=config["visage"],
        run=config["run"],
        kind=config["landscape"]["kind"],
    log:
        f"{RUN}/logs/visage.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/visage.py"
