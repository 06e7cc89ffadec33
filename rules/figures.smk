rule figures:
    input:
        asr=f"{RUN}/tables/asr.csv",
        summary=f"{RUN}/summary.json",
        directions=axis_dirs(next(iter(LANDSCAPES))) if len(LANDSCAPES) == 1 else [],
        projections=expand(f"{RUN}/projections/{{model}}.json", model=PROJECTED),
    output:
        [
            report(path, caption="../report/landscape.rst", category="Figures") if path.endswith(".png") else path
            for path in figure_targets()
        ],
    params:
        style=config["figures"],
        axes=LANDSCAPES[next(iter(LANDSCAPES))].axes,
        two_d=is_2d(config),
    log:
        f"{RUN}/logs/figures.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/figures.py"
