# VISAGE: ASR per point, VISAGE per landscape and judge (both definitions, bootstrap CIs; on the mean
# score too for scoring judges), judge agreement, the run's summary, and the category counts of the
# judges that answer in Llama Guard's format.
rule visage:
    input:
        lambda wc: landscape_judgments(measured_landscapes()),
    output:
        asr=report(f"{RUN}/tables/asr.csv", caption="../report/asr.rst", category="Safety landscape", subcategory="Tables"),
        visage=report(f"{RUN}/tables/visage.csv", caption="../report/visage.rst", category="Safety landscape", subcategory="Tables"),
        agreement=report(f"{RUN}/tables/agreement.csv", caption="../report/agreement.rst", category="Safety landscape", subcategory="Tables"),
        headline=f"{RUN}/tables/visage_summary.csv",
        asr_parquet=f"{RUN}/tables/asr.parquet",
        visage_parquet=f"{RUN}/tables/visage.parquet",
        agreement_parquet=f"{RUN}/tables/agreement.parquet",
        summary=f"{RUN}/summary.json",
        **({"guard_categories": f"{RUN}/tables/guard_categories.csv"} if GUARD_JUDGES else {}),
    params:
        code=code("visage.py"),
        setup=SETUP,
        landscapes=lambda wc: measured_landscapes(),
        judges=list(JUDGES),
        guard=GUARD_JUDGES,
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
