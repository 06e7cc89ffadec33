rule visage:
    input:
        expand(f"{RUN}/judgments/{{judge}}/{{landscape}}/{{point}}.jsonl", judge=JUDGES, landscape=LANDSCAPES, point=POINTS),
    output:
        asr=report(f"{RUN}/tables/asr.csv", caption="../report/asr.rst", category="Tables"),
        visage=report(f"{RUN}/tables/visage.csv", caption="../report/visage.rst", category="Tables"),
        agreement=report(f"{RUN}/tables/agreement.csv", caption="../report/agreement.rst", category="Tables"),
        asr_parquet=f"{RUN}/tables/asr.parquet",
        visage_parquet=f"{RUN}/tables/visage.parquet",
        agreement_parquet=f"{RUN}/tables/agreement.parquet",
        summary=f"{RUN}/summary.json",
    params:
        coords=COORDS,
        landscapes=list(LANDSCAPES),
        judges=list(JUDGES),
        visage=config["visage"],
        run=config["run"],
        kind=config["landscape"]["kind"],
    log:
        f"{RUN}/logs/visage.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/visage.py"
