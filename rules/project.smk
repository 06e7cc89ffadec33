rule project:
    input:
        model=subject_manifest(),
        checkpoint=lambda wc: manifest(wc.model),
        directions=axis_dirs(next(iter(LANDSCAPES))),
    output:
        f"{RUN}/projections/{{model}}.json",
    params:
        landscape=next(iter(LANDSCAPES)),
    log:
        f"{RUN}/logs/project/{{model}}.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/project.py"
