# VISAGE: ASR per point, VISAGE per landscape and judge (both definitions, bootstrap CIs), judge
# agreement, and the run's summary.
rule visage:
    input:
        landscape_judgments(MAIN),
    output:
        asr=report(f"{RUN}/tables/asr.csv", caption="../report/asr.rst", category="Safety landscape", subcategory="Tables"),
        visage=report(f"{RUN}/tables/visage.csv", caption="../report/visage.rst", category="Safety landscape", subcategory="Tables"),
        agreement=report(f"{RUN}/tables/agreement.csv", caption="../report/agreement.rst", category="Safety landscape", subcategory="Tables"),
        headline=f"{RUN}/tables/visage_summary.csv",
        asr_parquet=f"{RUN}/tables/asr.parquet",
        visage_parquet=f"{RUN}/tables/visage.parquet",
        agreement_parquet=f"{RUN}/tables/agreement.parquet",
        summary=f"{RUN}/summary.json",
    params:
        code=code("visage.py"),
        setup=SETUP,
        landscapes=MAIN,
        judges=list(JUDGES),
        visage=config["visage"],
        run=config["run"],
        kind=config["landscape"]["kind"],
        adaptive=ADAPTIVE,
    log:
        f"{RUN}/logs/visage.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/visage.py"
