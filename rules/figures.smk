rule figures:
    input:
        asr=f"{RUN}/tables/asr.csv",
        summary=f"{RUN}/summary.json",
    output:
        png=report(f"{RUN}/figures/landscape_1d.png", caption="../report/landscape_1d.rst", category="Figures"),
        pdf=f"{RUN}/figures/landscape_1d.pdf",
    params:
        style=config["figures"],
    log:
        f"{RUN}/logs/figures.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/figures.py"
